package cli

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmenv"
)

// InstallGuardOptions are the flags of `helm rotate-key install-guard`, which installs the Helm 4 postrenderer/v1
// plugin rotate-key-guard — but only into a plugins folder no Helm 3 reads: Helm 3.22 rejects apiVersion:v1
// plugin.yaml files, and ONE of them in its folder makes every Helm 3 plugin vanish.
type InstallGuardOptions struct {
	// Helm4Only is the operator's statement that the plugins folder belongs to Helm 4 alone, for the case the
	// check cannot rule out (a Helm 3 on PATH and HELM_DATA_HOME/HELM_PLUGINS set, maybe only for Helm 4).
	Helm4Only bool
	DryRun    bool

	source  string
	targets []string
	home    string
	getenv  func(string) string
	run     commandRunner
	path    string

	settings *helmenv.Settings
	streams  Streams
}

// commandRunner runs a program and returns its combined output; tests replace it.
type commandRunner func(ctx context.Context, env []string, name string, args ...string) (string, error)

func runCommand(ctx context.Context, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

const installGuardLong = `install-guard installs the Helm 4 post-renderer plugin "rotate-key-guard" from this plugin's folder
(a symlink, so upgrading the rotate-key plugin upgrades the guard too).

Helm 3 and Helm 4 share ~/.local/share/helm/plugins by default, and one Helm 4 (apiVersion: v1) plugin there makes
Helm 3 fail to load every plugin. So install-guard refuses when the folder Helm 4 installs into is, or may be, read by
a Helm 3, and prints how to give Helm 4 its own folder. Helm 3 needs no plugin: put bin/rotate-key-guard on PATH.`

func newInstallGuardCommand(streams Streams, settings *helmenv.Settings, getenv func(string) string) *cobra.Command {
	o := &InstallGuardOptions{settings: settings, streams: streams, getenv: getenv, run: runCommand}
	cmd := &cobra.Command{
		Use:   "install-guard",
		Short: "Install the Helm 4 post-renderer plugin rotate-key-guard (refuses a plugins folder Helm 3 also reads)",
		Long:  installGuardLong,
		Args:  usageArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := o.Complete(); err != nil {
				return err
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			if err := o.Validate(ctx); err != nil {
				return err
			}
			return o.Run(ctx)
		},
	}
	cmd.Flags().BoolVar(&o.Helm4Only, "helm4-only", false, "state that HELM_DATA_HOME/HELM_PLUGINS are set for Helm 4 alone, when a Helm 3 on PATH would otherwise make the check refuse")
	cmd.Flags().BoolVar(&o.DryRun, "dry-run", false, "check and print what would be installed, install nothing")
	return cmd
}

// Complete finds the guard plugin's source folder and the folders Helm 4 may install it into.
func (o *InstallGuardOptions) Complete() error {
	pluginDir := o.settings.PluginDir
	if pluginDir == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("install-guard: cannot find the rotate-key plugin folder: %w", err)
		}
		pluginDir = filepath.Dir(filepath.Dir(exe)) // <plugin>/bin/rotate-key
	}
	o.source = filepath.Join(pluginDir, "plugins", GuardExecutable)
	// Helm 4 installs local plugins into $HELM_PLUGINS, and some versions into $HELM_DATA_HOME/plugins regardless
	// (helm/helm#32646): both must be safe.
	for _, dir := range []string{o.settings.PluginsDir, joinIfSet(o.settings.DataHome, "plugins")} {
		if dir != "" && !containsPath(o.targets, dir) {
			o.targets = append(o.targets, dir)
		}
	}
	o.home = o.getenv("HOME")
	o.path = o.getenv("PATH")
	return nil
}

// Validate refuses unless the Helm running the plugin is Helm 4 and no Helm 3 reads the target folders.
func (o *InstallGuardOptions) Validate(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(o.source, "plugin.yaml")); err != nil {
		return exitcode.Withf(exitcode.Usage, "install-guard: the guard plugin is missing at %s: reinstall the rotate-key plugin from a full checkout", o.source)
	}
	major, err := helmMajor(ctx, o.run, os.Environ(), o.settings.HelmBin)
	if err != nil {
		return fmt.Errorf("install-guard: cannot tell which Helm runs this plugin (%s): %w", o.settings.HelmBin, err)
	}
	if major != 4 {
		return exitcode.Withf(exitcode.Refused, "install-guard refused: %s is Helm %d, which runs post-renderers as executables, not plugins.\n"+
			"Put the guard on PATH instead:  ln -s %s ~/.local/bin/%s\n"+
			"then: helm upgrade RELEASE CHART --post-renderer %s --post-renderer-args --release=RELEASE",
			o.settings.HelmBin, major, filepath.Join(filepath.Dir(filepath.Dir(o.source)), "bin", GuardExecutable), GuardExecutable, GuardExecutable)
	}
	if len(o.targets) == 0 {
		return exitcode.Withf(exitcode.Usage, "install-guard: HELM_PLUGINS is not set; run it through Helm 4: helm rotate-key install-guard")
	}
	shared := helm3DefaultPlugins(o.home, o.getenv)
	for _, t := range o.targets {
		if samePath(t, shared) {
			return exitcode.Withf(exitcode.Refused, "install-guard refused: Helm 4 would install into %s, which is also Helm 3's default plugins folder; "+
				"one Helm 4 plugin there makes every Helm 3 plugin fail to load.\n%s", t, giveHelm4ItsOwnFolder(o.home))
		}
	}
	for _, h3 := range findHelm3(ctx, o.run, o.path) {
		out, err := o.run(ctx, os.Environ(), h3, "env", "HELM_PLUGINS")
		if err != nil {
			continue
		}
		seen := strings.TrimSpace(out)
		for _, t := range o.targets {
			if samePath(seen, t) && !o.Helm4Only {
				return exitcode.Withf(exitcode.Refused, "install-guard refused: the Helm 3 at %s, run with this environment, reads plugins from %s — the folder Helm 4 would install into.\n"+
					"If HELM_DATA_HOME/HELM_PLUGINS are set only for Helm 4 (an alias or wrapper), rerun with --helm4-only.\n%s", h3, t, giveHelm4ItsOwnFolder(o.home))
			}
		}
	}
	return nil
}

// Run installs the guard plugin with the Helm 4 that invoked this command.
func (o *InstallGuardOptions) Run(ctx context.Context) error {
	if o.DryRun {
		fmt.Fprintf(o.streams.Out, "would run: %s plugin install %s (into %s)\n", o.settings.HelmBin, o.source, strings.Join(o.targets, ", "))
		return nil
	}
	out, err := o.run(ctx, os.Environ(), o.settings.HelmBin, "plugin", "install", o.source)
	fmt.Fprint(o.streams.Out, out)
	if err != nil {
		return fmt.Errorf("install-guard: %s plugin install %s failed: %w", o.settings.HelmBin, o.source, err)
	}
	fmt.Fprintf(o.streams.Out, "use it with: helm upgrade RELEASE CHART --post-renderer %s --post-renderer-args --release=RELEASE\n", GuardExecutable)
	return nil
}

func giveHelm4ItsOwnFolder(home string) string {
	return fmt.Sprintf("Give Helm 4 its own data folder, then install both plugins into it:\n"+
		"  alias helm4='HELM_DATA_HOME=%s/.local/share/helm4 helm4'   (or export it in a shell that runs only Helm 4)\n"+
		"  helm4 plugin install <rotate-key checkout>\n"+
		"  helm4 rotate-key install-guard", home)
}

// helmMajor asks a Helm binary for its version.
func helmMajor(ctx context.Context, run commandRunner, env []string, helm string) (int, error) {
	out, err := run(ctx, env, helm, "version", "--template", "{{.Version}}")
	if err != nil {
		return 0, fmt.Errorf("%s version: %w", helm, err)
	}
	v := strings.TrimSpace(out)
	switch {
	case strings.HasPrefix(v, "v3."):
		return 3, nil
	case strings.HasPrefix(v, "v4."):
		return 4, nil
	}
	return 0, fmt.Errorf("unrecognised Helm version %q", v)
}

// findHelm3 returns every executable on PATH named helm* that reports a 3.x version.
func findHelm3(ctx context.Context, run commandRunner, path string) []string {
	var found []string
	for _, dir := range filepath.SplitList(path) {
		matches, _ := filepath.Glob(filepath.Join(dir, "helm*"))
		for _, m := range matches {
			if st, err := os.Stat(m); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				continue
			}
			if major, err := helmMajor(ctx, run, os.Environ(), m); err == nil && major == 3 {
				found = append(found, m)
			}
		}
	}
	return found
}

// helm3DefaultPlugins is the plugins folder of a Helm 3 run with no HELM_* variables set (Helm's helmpath rules).
func helm3DefaultPlugins(home string, getenv func(string) string) string {
	switch runtime.GOOS {
	case "darwin":
		return filepath.Join(home, "Library", "helm", "plugins")
	case "windows":
		return filepath.Join(getenv("APPDATA"), "helm", "plugins")
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "helm", "plugins")
	}
	return filepath.Join(home, ".local", "share", "helm", "plugins")
}

func joinIfSet(dir, name string) string {
	if dir == "" {
		return ""
	}
	return filepath.Join(dir, name)
}

func containsPath(list []string, p string) bool {
	for _, l := range list {
		if samePath(l, p) {
			return true
		}
	}
	return false
}

// samePath compares two folders after resolving symlinks (a folder that does not exist yet compares cleaned).
func samePath(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	resolve := func(p string) string {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return r
		}
		return filepath.Clean(p)
	}
	return resolve(a) == resolve(b)
}
