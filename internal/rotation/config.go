package rotation

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Configuration annotations: the chart writes them on the keyring Secret so that the Secret carries its own
// settings wherever the rotation runs (operator machine, hook Job, CronJob).
const (
	AnnoTTLSeconds = Prefix + "ttl-seconds"
	AnnoInterval   = Prefix + "rotation-interval"
	AnnoConsumers  = Prefix + "consumers"
	AnnoTTLPath    = Prefix + "ttl-values-path"
	AnnoClockSkew  = Prefix + "clock-skew-seconds"
)

// Defaults, used only when nothing is configured.
const (
	DefaultTTL      = 90 * 24 * time.Hour
	DefaultInterval = 90 * 24 * time.Hour
	DefaultTTLPath  = "tokenTtlSeconds"
	MinTTL          = 60 * time.Second
	// MaxTTL is the longest token TTL accepted anywhere (flag, annotation, release value).
	MaxTTL = 10 * 365 * 24 * time.Hour
	// DefaultClockSkew is added to the TTL when a retirement time is computed: a verifier whose clock runs behind
	// the signer's, or that allows some leeway on exp, accepts a token a little past exp. Five minutes is the
	// leeway common JWT libraries and Kerberos allow; the Secret's clock-skew-seconds annotation changes it.
	DefaultClockSkew = 5 * time.Minute
	// MaxClockSkew bounds the margin: a day of skew is a broken clock, not a margin.
	MaxClockSkew = 24 * time.Hour
)

// ParseTTL reads a token TTL as an operator writes it on a command line: whole seconds ("7776000"), days ("90d")
// or a Go duration ("2160h"). Zero, a negative TTL, one below MinTTL or above MaxTTL is refused: the one TTL rule
// of the flag, the annotation and the release value (checkTTL).
func ParseTTL(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(MaxTTL/time.Second) || n < 0 {
			return 0, fmt.Errorf("%q is not between %s and 10 years", v, MinTTL)
		}
		d = time.Duration(n) * time.Second
	} else if days, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n < 0 || n > int64(MaxTTL/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a number of days between 1 and %d", v, int64(MaxTTL/(24*time.Hour)))
		}
		d = time.Duration(n) * 24 * time.Hour
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, fmt.Errorf("%q is not seconds, days (90d) or a duration (2160h)", v)
	}
	return d, checkTTL(d, v)
}

// checkTTL is the one bound on a TTL.
func checkTTL(d time.Duration, as string) error {
	if d < MinTTL || d > MaxTTL {
		return fmt.Errorf("%q is not between %s and 10 years", as, MinTTL)
	}
	return nil
}

// ConsumerRef names a workload that reads the keyring.
type ConsumerRef struct {
	Kind string // Deployment, StatefulSet or DaemonSet
	Name string
}

func (c ConsumerRef) String() string { return c.Kind + "/" + c.Name }

// ParseConsumers reads "Deployment/a, StatefulSet/b".
func ParseConsumers(v string) ([]ConsumerRef, error) {
	var out []ConsumerRef
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		kind, name, ok := strings.Cut(part, "/")
		switch kind {
		case "Deployment", "StatefulSet", "DaemonSet":
		default:
			ok = false
		}
		if !ok || name == "" {
			return nil, fmt.Errorf("consumer %q is not Deployment/NAME, StatefulSet/NAME or DaemonSet/NAME", part)
		}
		out = append(out, ConsumerRef{Kind: kind, Name: name})
	}
	return out, nil
}

// Overrides are the command-line settings, which win over everything else.
type Overrides struct {
	TTL       time.Duration
	Interval  time.Duration
	Consumers []ConsumerRef
	// Force and Reason allow a TTL shorter than the configured one (an emergency rotation of a leaked key).
	Force  bool
	Reason string
}

// Config is the resolved configuration of a rotation, with where each value came from.
type Config struct {
	TTL       time.Duration
	TTLSource string
	// TTLDefaulted is true when nothing configures the TTL (no flag, annotation or release value): the default is
	// then only shown, never used — a rotation is refused, because retiring a key after a guessed TTL can reject
	// live tokens.
	TTLDefaulted    bool
	Interval        time.Duration
	IntervalSource  string
	Consumers       []ConsumerRef // empty: discover them
	ConsumersSource string
	// ClockSkew is added to the TTL in every retirement time (RetireAfter).
	ClockSkew       time.Duration
	ClockSkewSource string
}

// ResolveConfig combines, in order of precedence: flags, the Secret's annotations, the release's values (TTL only,
// at the path the Secret names or tokenTtlSeconds), then the defaults. A --ttl shorter than the configured TTL
// is refused without --force and --reason: tokens signed with the old key would be rejected before they expire.
func ResolveConfig(annotations map[string]string, values map[string]any, o Overrides) (Config, error) {
	c := Config{TTL: DefaultTTL, TTLDefaulted: true, TTLSource: "NOT CONFIGURED (a rotation is refused: set the Secret annotation " + AnnoTTLSeconds + ", the release value at " + AnnoTTLPath + ", or --ttl)", Interval: DefaultInterval, IntervalSource: "default (90 days)", ConsumersSource: "discovered (pod templates that reference the Secret)",
		ClockSkew: DefaultClockSkew, ClockSkewSource: "default (5 minutes)"}
	configured, configuredSource := time.Duration(0), ""
	if v, ok := annotations[AnnoTTLSeconds]; ok {
		d, err := parseSeconds(v)
		if err != nil {
			return c, fmt.Errorf("annotation %s: %w", AnnoTTLSeconds, err)
		}
		configured, configuredSource = d, "Secret annotation "+AnnoTTLSeconds
	} else {
		path := DefaultTTLPath
		if p := annotations[AnnoTTLPath]; p != "" {
			path = p
		}
		if raw, ok := lookupPath(values, path); ok {
			d, err := parseSeconds(fmt.Sprint(raw))
			if err != nil {
				return c, fmt.Errorf("release value %s: %w", path, err)
			}
			configured, configuredSource = d, "release value "+path
		} else if annotations[AnnoTTLPath] == "" {
			// A chart without the library keeps it at a key of its own: one TTL-like value is it; between several
			// nothing is guessed (the 90-day default never stands in silently either: a rotation is refused).
			switch found := ttlPaths(values, ""); len(found) {
			case 0:
			case 1:
				if d, err := parseSeconds(fmt.Sprint(found[0].value)); err == nil {
					configured, configuredSource = d, "release value "+found[0].path+" (the only value whose key names a TTL; pin it with the Secret annotation "+AnnoTTLPath+")"
				}
			default:
				names := make([]string, len(found))
				for i, f := range found {
					names[i] = f.path
				}
				c.TTLSource = "NOT CONFIGURED (several values look like a TTL: " + strings.Join(names, ", ") + "; name the one with the Secret annotation " + AnnoTTLPath + ", or pass --ttl)"
			}
		}
	}
	if configured > 0 {
		c.TTL, c.TTLSource, c.TTLDefaulted = configured, configuredSource, false
	}
	if o.TTL > 0 {
		if err := checkTTL(o.TTL, o.TTL.String()); err != nil {
			return c, fmt.Errorf("--ttl: %w", err)
		}
		if !c.TTLDefaulted && o.TTL < c.TTL && !(o.Force && strings.TrimSpace(o.Reason) != "") {
			return c, fmt.Errorf("--ttl %s is shorter than the configured TTL %s (%s): tokens signed with the old key would be rejected before they expire; if that is intended (a leaked key), add --force --reason \"...\"", o.TTL, c.TTL, c.TTLSource)
		}
		c.TTL, c.TTLSource, c.TTLDefaulted = o.TTL, "flag --ttl", false
		if o.Force && o.Reason != "" {
			c.TTLSource += fmt.Sprintf(" (forced: %s)", o.Reason)
		}
	}
	if v, ok := annotations[AnnoInterval]; ok {
		d, err := parseDuration(v)
		if err != nil {
			return c, fmt.Errorf("annotation %s: %w", AnnoInterval, err)
		}
		c.Interval, c.IntervalSource = d, "Secret annotation "+AnnoInterval
	}
	if o.Interval > 0 {
		c.Interval, c.IntervalSource = o.Interval, "flag --interval"
	}
	if v := annotations[AnnoConsumers]; v != "" {
		refs, err := ParseConsumers(v)
		if err != nil {
			return c, fmt.Errorf("annotation %s: %w", AnnoConsumers, err)
		}
		c.Consumers, c.ConsumersSource = refs, "Secret annotation "+AnnoConsumers
	}
	if len(o.Consumers) > 0 {
		c.Consumers, c.ConsumersSource = o.Consumers, "flag --consumer"
	}
	if v, ok := annotations[AnnoClockSkew]; ok {
		d, err := ParseClockSkew(v)
		if err != nil {
			return c, fmt.Errorf("annotation %s: %w", AnnoClockSkew, err)
		}
		c.ClockSkew, c.ClockSkewSource = d, "Secret annotation "+AnnoClockSkew
	}
	return c, nil
}

// ParseClockSkew reads the clock-skew margin of the Secret's annotation: whole seconds from 0 to MaxClockSkew.
func ParseClockSkew(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 || n > int64(MaxClockSkew/time.Second) {
		return 0, fmt.Errorf("%q is not a whole number of seconds between 0 and %d (a day)", v, int64(MaxClockSkew/time.Second))
	}
	return time.Duration(n) * time.Second, nil
}

// parseSeconds reads the TTL of an annotation or a release value: a whole number of seconds (a YAML number may
// arrive as 3600 or 3600.0), within checkTTL's bounds.
func parseSeconds(v string) (time.Duration, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || f != float64(int64(f)) || f > MaxTTL.Seconds() || checkTTL(time.Duration(int64(f))*time.Second, v) != nil {
		return 0, fmt.Errorf("%q is not a whole number of seconds between %d and 10 years", v, int(MinTTL.Seconds()))
	}
	return time.Duration(int64(f)) * time.Second, nil
}

// parseDuration accepts Go durations ("2160h") and days ("90d").
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	if d, ok := strings.CutSuffix(v, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n <= 0 || n > int(MaxTTL/(24*time.Hour)) {
			return 0, fmt.Errorf("%q is not a number of days between 1 and %d (10 years)", v, int(MaxTTL/(24*time.Hour)))
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Hour || d > MaxTTL {
		return 0, fmt.Errorf("%q is not a duration between 1h and 10 years (e.g. 90d or 2160h)", v)
	}
	return d, nil
}

// ParseDuration is parseDuration for flags.
func ParseDuration(v string) (time.Duration, error) { return parseDuration(v) }

type valueAt struct {
	path  string
	value any
}

// ttlPaths lists, sorted, the values below prefix whose key mentions a TTL ("ttl", any case) and whose value is a
// whole number of seconds (a number, or a numeric string as --set writes it).
func ttlPaths(values map[string]any, prefix string) []valueAt {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []valueAt
	for _, k := range keys {
		switch v := values[k].(type) {
		case map[string]any:
			out = append(out, ttlPaths(v, prefix+k+".")...)
		case float64, int, int64, string:
			if _, err := parseSeconds(fmt.Sprint(v)); err == nil && strings.Contains(strings.ToLower(k), "ttl") {
				out = append(out, valueAt{prefix + k, v})
			}
		}
	}
	return out
}

func lookupPath(values map[string]any, path string) (any, bool) {
	var cur any = values
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[part]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// RequestPattern is what a rotation request id (the chart value rotate-key.rotation.request) may look like: it
// becomes the rotation id and part of the restart annotation's value. The library chart checks the same pattern
// (a test compares the two).
var RequestPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidRequest reports whether id is a valid rotation request id.
func ValidRequest(id string) bool { return RequestPattern.MatchString(id) }
