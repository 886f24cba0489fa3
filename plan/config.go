package plan

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"

	"github.com/cairn-backup/cairn/repo/location"
)

// Config is the configuration file of DESIGN.md §4: named repositories
// and named plans.
type Config struct {
	Repos map[string]RepoDef `json:"repos,omitempty"`
	Plans map[string]Plan    `json:"plans,omitempty"`
}

// RepoDef defines a repository: where it is and where its password and
// credentials come from. It holds references (a file name, the name of
// an environment variable, a command), never a secret itself, so it can
// be printed and saved freely.
type RepoDef struct {
	// URL is where the repository is: an absolute path or a URL of a
	// scheme of the location registry (repo/location).
	URL string `json:"url"`

	// At most one password source; with none the command line's
	// (--password-file, $CAIRN_PASSWORD_FILE, $CAIRN_PASSWORD, a prompt).
	PasswordFile    string `json:"password_file,omitempty"`    // first line of this file; "~/" is the home directory
	PasswordEnv     string `json:"password_env,omitempty"`     // this environment variable
	PasswordCommand string `json:"password_command,omitempty"` // first line of this shell command's output

	// Environment variables holding the access key and secret of a
	// store that takes credentials, instead of the store's defaults
	// (location.Options.Credentials). Both or neither.
	AccessKeyIDEnv     string `json:"access_key_id_env,omitempty"`
	SecretAccessKeyEnv string `json:"secret_access_key_env,omitempty"`

	// SettleTime is how long taking an exclusive lock waits for a slow
	// store's listings to show rival locks (DESIGN.md §7), a duration
	// such as "10s"; empty for the default.
	SettleTime string `json:"settle_time,omitempty"`
}

// String describes the definition with credentials redacted: a password
// in the URL shows as "xxxxx"; password sources are named, not read.
func (d RepoDef) String() string {
	s := location.Display(d.URL)
	switch {
	case d.PasswordFile != "":
		s += " (password from file " + d.PasswordFile + ")"
	case d.PasswordEnv != "":
		s += " (password from $" + d.PasswordEnv + ")"
	case d.PasswordCommand != "":
		s += " (password from command " + d.PasswordCommand + ")"
	}
	return s
}

// Plan is a backup plan: what to back up, into which repositories, when,
// and how long to keep snapshots.
type Plan struct {
	Sources []string `json:"sources"`           // absolute paths
	Exclude []string `json:"exclude,omitempty"` // patterns, see Exclude
	Repos   []string `json:"repos"`             // names of repositories of the Config
	// Schedule is a cron expression of five fields or a descriptor such
	// as "@daily" or "@every 6h"; empty: the plan runs only when asked.
	Schedule string `json:"schedule,omitempty"`
	// Jitter delays each scheduled run by a random duration up to this
	// much ("10m"), so plans sharing a time do not stampede.
	Jitter        string    `json:"jitter,omitempty"`
	Retention     Retention `json:"retention,omitzero"`
	Hooks         Hooks     `json:"hooks,omitzero"`
	Tags          []string  `json:"tags,omitempty"`
	OneFileSystem bool      `json:"one_file_system,omitempty"`
}

// Hooks are shell commands run around a plan's run. Each gets a minimal
// environment (see hookEnv): a few harmless variables of cairn's own,
// the plan's name, repository and snapshot, and what Env lists; never a
// password or credential cairn reads. A failing Before hook cancels the
// run.
type Hooks struct {
	Before  []string `json:"before,omitempty"`
	After   []string `json:"after,omitempty"`
	OnError []string `json:"on_error,omitempty"`
	Timeout string   `json:"timeout,omitempty"` // per command, e.g. "5m"
	// Env adds to the hooks' environment: "NAME" passes cairn's own
	// variable (if set), "NAME=value" sets one. The values are part of
	// the definition, which plan.json shows: name a variable for a
	// secret, never write it here. Credential variables are refused.
	Env []string `json:"env,omitempty"`
	// PublicOutput lets every user who can reach the mount read the
	// plan's log, which holds the hooks' output; by default only the
	// mount's owner may (mode 0400, enforced with --allow-other).
	PublicOutput bool `json:"public_output,omitempty"`
}

// Parse reads a configuration file's text strictly: a syntax error, an
// unknown or repeated field, a value of the wrong type, and every invalid
// setting (see Validate) is an *Error naming the field's path and its
// line and column.
func Parse(data []byte) (*Config, error) {
	doc, err := parseDocument(data)
	if err != nil {
		return nil, err
	}
	var c Config
	if err := doc.decodeValue(doc.root, reflect.ValueOf(&c).Elem(), ""); err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, doc.locate(err)
	}
	return &c, nil
}

// ParsePlan reads one plan's JSON, as plans/<name>/plan.json holds it,
// as strictly as Parse; paths in errors are relative to the plan
// ("retention.keep_daily"). The repositories it names are not checked:
// see (*Config).ParsePlan.
func ParsePlan(data []byte) (Plan, error) {
	return parsePlan(data, nil)
}

// ParsePlan is the package's ParsePlan, and also requires every
// repository the plan names to be defined in c.
func (c *Config) ParsePlan(data []byte) (Plan, error) {
	repos := c.repos()
	if repos == nil {
		repos = map[string]RepoDef{}
	}
	return parsePlan(data, repos)
}

func parsePlan(data []byte, repos map[string]RepoDef) (Plan, error) {
	doc, err := parseDocument(data)
	if err != nil {
		return Plan{}, err
	}
	var p Plan
	if err := doc.decodeValue(doc.root, reflect.ValueOf(&p).Elem(), ""); err != nil {
		return Plan{}, err
	}
	if err := p.validate("", repos); err != nil {
		return Plan{}, doc.locate(err)
	}
	return p, nil
}

func (c *Config) repos() map[string]RepoDef {
	if c == nil {
		return nil
	}
	return c.Repos
}

// Validate checks every setting: names of repositories and plans are
// not empty, ".", ".." nor contain '/'; a repository has a URL (an
// absolute path or a URL of a registered scheme, without a password in it),
// at most one password source and both or neither credential variables;
// a plan has absolute sources, valid exclude patterns, at least one
// repository and only defined ones, a valid schedule, durations and
// retention. The first problem is returned as an *Error.
func (c *Config) Validate() error {
	for _, name := range sortedKeys(c.Repos) {
		p := joinKey("repos", name)
		if err := validName(name); err != nil {
			return &Error{Path: p, Msg: "repository " + err.Error()}
		}
		if err := c.Repos[name].validate(p); err != nil {
			return err
		}
	}
	repos := c.Repos
	if repos == nil {
		repos = map[string]RepoDef{}
	}
	for _, name := range sortedKeys(c.Plans) {
		p := joinKey("plans", name)
		if err := validPlanName(name); err != nil {
			return &Error{Path: p, Msg: "plan " + err.Error()}
		}
		pl := c.Plans[name]
		if err := pl.validate(p, repos); err != nil {
			return err
		}
	}
	return nil
}

// ValidName reports whether name may name a plan or a repository: it
// becomes a directory name in the mounted tree.
func ValidName(name string) error {
	if err := validName(name); err != nil {
		return &Error{Msg: "name " + err.Error()}
	}
	return nil
}

func validName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case name == "." || name == "..":
		return fmt.Errorf("name %q is not allowed", name)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q contains '/' or a NUL byte", name)
	}
	return nil
}

// MaxPlanName is the longest plan name, in bytes.
const MaxPlanName = 64

// ValidPlanName reports whether name may name a plan. A plan's name is
// part of its snapshots' labels (<UTC time>_<plan>), so it keeps to what
// labels are made of: ASCII letters, digits, '-', '_' and '.', not
// starting with '.' (no hidden directories, no "." or ".."), at most
// MaxPlanName bytes.
func ValidPlanName(name string) error {
	if err := validPlanName(name); err != nil {
		return &Error{Msg: "name " + err.Error()}
	}
	return nil
}

func validPlanName(name string) error {
	switch {
	case name == "":
		return errors.New("name is empty")
	case len(name) > MaxPlanName:
		return fmt.Errorf("name %q is longer than %d bytes", name, MaxPlanName)
	case name[0] == '.':
		return fmt.Errorf("name %q starts with '.'", name)
	}
	for _, c := range []byte(name) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("name %q may hold only letters, digits, '-', '_' and '.'", name)
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (d RepoDef) validate(path string) error {
	if d.URL == "" {
		return &Error{Path: joinKey(path, "url"), Msg: "a repository needs a url"}
	}
	if err := checkURL(d.URL); err != nil {
		return &Error{Path: joinKey(path, "url"), Msg: err.Error()}
	}
	var sources []string
	for _, s := range []struct{ name, val string }{
		{"password_file", d.PasswordFile}, {"password_env", d.PasswordEnv}, {"password_command", d.PasswordCommand},
	} {
		if s.val != "" {
			sources = append(sources, s.name)
		}
	}
	if len(sources) > 1 {
		return &Error{Path: joinKey(path, sources[1]), Msg: "give only one of " + strings.Join(sources, " and ")}
	}
	if f := d.PasswordFile; f != "" && !filepath.IsAbs(f) && !strings.HasPrefix(f, "~/") {
		return &Error{Path: joinKey(path, "password_file"), Msg: fmt.Sprintf("%q is not an absolute path (nor starts with ~/)", f)}
	}
	if (d.AccessKeyIDEnv == "") != (d.SecretAccessKeyEnv == "") {
		field := "secret_access_key_env"
		if d.AccessKeyIDEnv == "" {
			field = "access_key_id_env"
		}
		return &Error{Path: joinKey(path, field), Msg: "access_key_id_env and secret_access_key_env go together"}
	}
	if d.SettleTime != "" {
		if _, err := ParseDuration(d.SettleTime); err != nil {
			return &Error{Path: joinKey(path, "settle_time"), Msg: err.Error()}
		}
	}
	return nil
}

// checkURL checks what can be known of a repository's location without
// opening it: its scheme is registered, a path is absolute, a URL holds
// no password.
func checkURL(s string) error {
	loc, err := location.Parse(s)
	switch {
	case err != nil:
		return err
	case loc.Relative():
		return fmt.Errorf("%q is not an absolute path nor an %s URL", s, location.URLs())
	case loc.Secret():
		return fmt.Errorf("%s holds a password: name environment variables in access_key_id_env and secret_access_key_env instead", loc)
	}
	return nil
}

// validate checks a plan; repos, if not nil, are the repositories it may
// name.
func (p Plan) validate(path string, repos map[string]RepoDef) error {
	field := func(name string) string { return joinKey(path, name) }
	if len(p.Sources) == 0 {
		return &Error{Path: field("sources"), Msg: "a plan needs at least one source"}
	}
	seen := make(map[string]bool)
	for i, s := range p.Sources {
		at := joinIndex(field("sources"), i)
		switch {
		case s == "":
			return &Error{Path: at, Msg: "empty path"}
		case !filepath.IsAbs(s):
			return &Error{Path: at, Msg: fmt.Sprintf("%q is not an absolute path", s)}
		case seen[filepath.Clean(s)]:
			return &Error{Path: at, Msg: fmt.Sprintf("%q is listed twice", s)}
		}
		seen[filepath.Clean(s)] = true
	}
	for i, pat := range p.Exclude {
		if _, err := compilePattern(pat); err != nil {
			return &Error{Path: joinIndex(field("exclude"), i), Msg: err.Error()}
		}
	}
	if len(p.Repos) == 0 {
		return &Error{Path: field("repos"), Msg: "a plan needs at least one repository"}
	}
	seen = make(map[string]bool)
	for i, r := range p.Repos {
		at := joinIndex(field("repos"), i)
		if r == "" {
			return &Error{Path: at, Msg: "empty repository name"}
		}
		if seen[r] {
			return &Error{Path: at, Msg: fmt.Sprintf("repository %q is listed twice", r)}
		}
		seen[r] = true
		if _, ok := repos[r]; repos != nil && !ok {
			return &Error{Path: at, Msg: fmt.Sprintf("repository %q is not defined (see repos)", r)}
		}
	}
	if p.Schedule != "" {
		if _, err := ParseSchedule(p.Schedule); err != nil {
			return &Error{Path: field("schedule"), Msg: err.Error()}
		}
	}
	if p.Jitter != "" {
		if _, err := ParseDuration(p.Jitter); err != nil {
			return &Error{Path: field("jitter"), Msg: err.Error()}
		}
	}
	if err := p.Retention.validate(field("retention")); err != nil {
		return err
	}
	if err := p.Hooks.validate(field("hooks"), repos); err != nil {
		return err
	}
	if err := checkTags(p.Tags, field("tags")); err != nil {
		return err
	}
	return nil
}

// validate checks the hooks; repos, if not nil, are the repositories
// of the configuration, whose credential variables Env must not name.
func (h Hooks) validate(path string, repos map[string]RepoDef) error {
	for _, list := range []struct {
		name string
		cmds []string
	}{{"before", h.Before}, {"after", h.After}, {"on_error", h.OnError}} {
		for i, c := range list.cmds {
			if strings.TrimSpace(c) == "" {
				return &Error{Path: joinIndex(joinKey(path, list.name), i), Msg: "empty command"}
			}
		}
	}
	if h.Timeout != "" {
		d, err := ParseDuration(h.Timeout)
		if err == nil && d == 0 {
			err = errors.New("a timeout of 0 would stop every hook at once")
		}
		if err != nil {
			return &Error{Path: joinKey(path, "timeout"), Msg: err.Error()}
		}
	}
	secrets := secretEnv(repos)
	seen := make(map[string]bool)
	for i, e := range h.Env {
		at := joinIndex(joinKey(path, "env"), i)
		name, value, set := strings.Cut(e, "=")
		switch {
		case !validEnvName(name):
			// The name only: status, which everyone may read, shows
			// the message, and the value of a refused entry is nowhere
			// else.
			return &Error{Path: at, Msg: fmt.Sprintf("want NAME or NAME=value; %q is not a variable name (letters, digits and _, not starting with a digit)", name)}
		case set && strings.ContainsRune(value, 0):
			return &Error{Path: at, Msg: fmt.Sprintf("the value of %s contains a NUL byte", name)}
		case secrets[name] != "":
			return &Error{Path: at, Msg: fmt.Sprintf("%s is %s; hooks never get passwords or credentials", name, secrets[name])}
		case slices.Contains(runEnv, name):
			return &Error{Path: at, Msg: fmt.Sprintf("%s is set by each run", name)}
		case seen[name]:
			return &Error{Path: at, Msg: fmt.Sprintf("%s is listed twice", name)}
		}
		seen[name] = true
	}
	return nil
}

// validEnvName reports whether s is a portable environment variable
// name: letters, digits and '_', not starting with a digit.
func validEnvName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// credentialEnv are the variables cairn reads passwords and credentials
// from whatever the configuration says: the command line's password
// sources (cmd/cairn) and the default credentials of the storage schemes
// (location.SecretEnv).
func credentialEnv() []string {
	return append([]string{"CAIRN_PASSWORD", "CAIRN_PASSWORD_FILE"}, location.SecretEnv()...)
}

// secretEnv maps every variable that holds a password or credential for
// cairn to what it is: credentialEnv, and the password_env,
// access_key_id_env and secret_access_key_env of every repository of
// repos (not only the plan's: the mount holds them all).
func secretEnv(repos map[string]RepoDef) map[string]string {
	creds := credentialEnv()
	m := make(map[string]string, len(creds)+3*len(repos))
	for _, name := range creds {
		m[name] = "where cairn reads a password or credential from"
	}
	for _, r := range sortedKeys(repos) {
		d := repos[r]
		for _, v := range []struct{ field, name string }{
			{"password_env", d.PasswordEnv}, {"access_key_id_env", d.AccessKeyIDEnv}, {"secret_access_key_env", d.SecretAccessKeyEnv},
		} {
			if v.name != "" && m[v.name] == "" {
				m[v.name] = fmt.Sprintf("the %s of repository %q", v.field, r)
			}
		}
	}
	return m
}

func checkTags(tags []string, path string) error {
	for i, t := range tags {
		switch {
		case t == "":
			return &Error{Path: joinIndex(path, i), Msg: "empty tag"}
		case strings.Contains(t, ","):
			return &Error{Path: joinIndex(path, i), Msg: fmt.Sprintf("tag %q contains a comma", t)}
		}
	}
	return nil
}

// DefaultPath is the configuration file's path: $CAIRN_CONFIG, else
// config.json in cairn's directory under the user's configuration
// directory ($XDG_CONFIG_HOME, else ~/.config).
func DefaultPath() (string, error) {
	if p := os.Getenv("CAIRN_CONFIG"); p != "" {
		return p, nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("no configuration file: set $CAIRN_CONFIG (%w)", err)
	}
	return filepath.Join(dir, "cairn", "config.json"), nil
}

// Load reads and parses the configuration file. A missing file is an
// empty configuration, not an error.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Marshal returns the configuration as Save writes it: indented JSON,
// maps sorted by name, empty settings left out.
func (c *Config) Marshal() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(c); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Save validates the configuration and writes it to path atomically,
// mode 0600: into a temporary file in the same directory, synced, then
// renamed over path, and the directory synced, so that path holds the old
// or the new text whole, even after a crash. A symbolic link at path is
// followed, so a linked configuration stays linked.
func (c *Config) Save(path string) error {
	if err := c.Validate(); err != nil {
		return err
	}
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	if target, err := filepath.EvalSymlinks(path); err == nil {
		path = target
	}
	return writeAtomic(path, data, 0o600)
}

func writeAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	renamed := false
	defer func() {
		if err != nil && !renamed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	renamed = true
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
