package action

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/tracebloc/helm-rotate-key/internal/exitcode"
	"github.com/tracebloc/helm-rotate-key/internal/helmexec"
)

// InstallGuard is `helm rotate-key install-guard`, which installs the Helm 4 postrenderer/v1 plugin
// rotate-key-guard — but only into a plugins folder no Helm 3 reads: Helm 3.22 rejects apiVersion:v1 plugin.yaml
// files, and ONE of them in its folder makes every Helm 3 plugin vanish.
type InstallGuard struct {
	// Helm4Only is the operator's statement that the plugins folder belongs to Helm 4 alone, for the case the
	// check cannot rule out (a Helm 3 on PATH and HELM_DATA_HOME/HELM_PLUGINS set, maybe only for Helm 4).
	Helm4Only bool
	DryRun    bool

	source  string
	targets []string
	home    string
	path    string
}

// Complete finds the guard plugin's source folder and the folders Helm 4 may install it into.
func (a *InstallGuard) Complete(c *Config) error {
	pluginDir := c.Settings.PluginDir
	if pluginDir == "" {
		exe, err := c.Executable()
		if err != nil {
			return fmt.Errorf("install-guard: cannot find the rotate-key plugin folder: %w", err)
		}
		pluginDir = filepath.Dir(filepath.Dir(exe)) // <plugin>/bin/rotate-key
	}
	a.source = filepath.Join(pluginDir, "plugins", GuardExecutable)
	// Helm 4 installs local plugins into $HELM_PLUGINS, and some versions into $HELM_DATA_HOME/plugins regardless
	// (helm/helm#32646): both must be safe.
	for _, dir := range []string{c.Settings.PluginsDir, joinIfSet(c.Settings.DataHome, "plugins")} {
		if dir != "" && !containsPath(a.targets, dir) {
			a.targets = append(a.targets, dir)
		}
	}
	a.home = c.Getenv("HOME")
	a.path = c.Getenv("PATH")
	return nil
}

// check refuses unless the Helm running the plugin is Helm 4 and no Helm 3 reads the target folders.
func (a *InstallGuard) check(ctx context.Context, c *Config) error {
	if _, err := os.Stat(filepath.Join(a.source, "plugin.yaml")); err != nil {
		return exitcode.Withf(exitcode.Usage, "install-guard: the guard plugin is missing at %s: reinstall the rotate-key plugin from a full checkout", a.source)
	}
	major, err := helmexec.Major(ctx, c.Helm)
	if err != nil {
		return fmt.Errorf("install-guard: cannot tell which Helm runs this plugin (%s): %w", c.Settings.HelmBin, err)
	}
	if major != 4 {
		return exitcode.Withf(exitcode.Refused, "install-guard refused: %s is Helm %d, which runs post-renderers as executables, not plugins.\n"+
			"Put the guard on PATH instead:  ln -s %s ~/.local/bin/%s\n"+
			"then: helm upgrade RELEASE CHART --post-renderer %s --post-renderer-args --release=RELEASE",
			c.Settings.HelmBin, major, filepath.Join(filepath.Dir(filepath.Dir(a.source)), "bin", GuardExecutable), GuardExecutable, GuardExecutable)
	}
	if len(a.targets) == 0 {
		return exitcode.Withf(exitcode.Usage, "install-guard: HELM_PLUGINS is not set; run it through Helm 4: helm rotate-key install-guard")
	}
	shared := helm3DefaultPlugins(a.home, c.Getenv)
	for _, t := range a.targets {
		if samePath(t, shared) {
			return exitcode.Withf(exitcode.Refused, "install-guard refused: Helm 4 would install into %s, which is also Helm 3's default plugins folder; "+
				"one Helm 4 plugin there makes every Helm 3 plugin fail to load.\n%s", t, giveHelm4ItsOwnFolder(a.home))
		}
	}
	for _, h3 := range findHelm3(ctx, c, a.path) {
		out, err := c.HelmAt(h3).Output(ctx, "env", "HELM_PLUGINS")
		if err != nil {
			continue
		}
		seen := strings.TrimSpace(string(out))
		for _, t := range a.targets {
			if samePath(seen, t) && !a.Helm4Only {
				return exitcode.Withf(exitcode.Refused, "install-guard refused: the Helm 3 at %s, run with this environment, reads plugins from %s — the folder Helm 4 would install into.\n"+
					"If HELM_DATA_HOME/HELM_PLUGINS are set only for Helm 4 (an alias or wrapper), rerun with --helm4-only.\n%s", h3, t, giveHelm4ItsOwnFolder(a.home))
			}
		}
	}
	return nil
}

// Run installs the guard plugin with the Helm 4 that invoked this command.
func (a *InstallGuard) Run(ctx context.Context, c *Config) error {
	// Each Helm asked answers in a moment; a hung one must not hang the install.
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := a.check(ctx, c); err != nil {
		return err
	}
	if a.DryRun {
		fmt.Fprintf(c.Out, "would run: %s plugin install %s (into %s)\n", c.Settings.HelmBin, a.source, strings.Join(a.targets, ", "))
		return nil
	}
	out, err := c.Helm.Output(ctx, "plugin", "install", a.source)
	c.Out.Write(out)
	if err != nil {
		return fmt.Errorf("install-guard: %s plugin install %s failed: %w", c.Settings.HelmBin, a.source, err)
	}
	fmt.Fprintf(c.Out, "use it with: helm upgrade RELEASE CHART --post-renderer %s --post-renderer-args --release=RELEASE\n", GuardExecutable)
	return nil
}

func giveHelm4ItsOwnFolder(home string) string {
	return fmt.Sprintf("Give Helm 4 its own data folder, then install both plugins into it:\n"+
		"  alias helm4='HELM_DATA_HOME=%s/.local/share/helm4 helm4'   (or export it in a shell that runs only Helm 4)\n"+
		"  helm4 plugin install <rotate-key checkout>\n"+
		"  helm4 rotate-key install-guard", home)
}

// findHelm3 returns every executable on PATH named helm* that reports a 3.x version.
func findHelm3(ctx context.Context, c *Config, path string) []string {
	var found []string
	for _, dir := range filepath.SplitList(path) {
		matches, _ := filepath.Glob(filepath.Join(dir, "helm*"))
		for _, m := range matches {
			if st, err := os.Stat(m); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
				continue
			}
			if major, err := helmexec.Major(ctx, c.HelmAt(m)); err == nil && major == 3 {
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
