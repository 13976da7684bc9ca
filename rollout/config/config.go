// Package config reads rollout's TOML configuration (default /usr/local/etc/rollout.toml).
// A file is either entirely valid or refused with one line naming the file, the line and the
// problem; nothing is run on a half-understood configuration.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"

	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/replicate"
	"github.com/rollout-dev/rollout/rollout/host"
)

// DefaultPath is where FreeBSD ports put configuration.
const DefaultPath = "/usr/local/etc/rollout.toml"

// Config is the whole file.
type Config struct {
	Pool      string            `toml:"pool"`
	JailRoot  string            `toml:"jail_root"`
	StateDir  string            `toml:"state_dir"`
	FstabDir  string            `toml:"fstab_dir"` // per-vhost fstabs: <fstab_dir>/fstab.<vhost>
	Proto     Proto             `toml:"proto"`
	Etc       Etc               `toml:"etc"`
	Log       Log               `toml:"log"`
	Replicate Replicate         `toml:"replicate"`
	Vhosts    map[string]*Vhost `toml:"vhost"`
	Slaves    map[string]*Slave `toml:"slave"`

	// Tries are the vhosts' test jails (rollout try), by jail name: each a Vhost made from its
	// vhost's settings and its [vhost.NAME.try] table (see TryVhost).
	Tries map[string]*Vhost `toml:"-"`

	// Timeouts comes from the [timeouts] table (TOML strings such as "5m"; see rawTimeouts).
	Timeouts Timeouts `toml:"-"`

	// Path is the file this was read from; absolute when it came from Load.
	Path string `toml:"-"`
}

// Timeouts are the deadlines of a jail's start, stop and health check.
type Timeouts struct {
	Start  time.Duration // the whole jail start; also jail(8)'s exec.timeout
	Stop   time.Duration // the whole jail stop
	Term   time.Duration // jail(8)'s stop.timeout: from SIGTERM to SIGKILL of the jail's processes
	Health time.Duration // the health check
}

// Default timeouts.
const (
	DefaultStartTimeout  = 5 * time.Minute
	DefaultStopTimeout   = 2 * time.Minute
	DefaultTermTimeout   = 10 * time.Second
	DefaultHealthTimeout = time.Minute
)

// rawTimeouts is the [timeouts] table as written; nil: not set, take the default.
type rawTimeouts struct {
	Start  *string `toml:"start"`
	Stop   *string `toml:"stop"`
	Term   *string `toml:"term"`
	Health *string `toml:"health"`
}

// document is the file as decoded: Config, plus the tables whose values are converted after
// decoding (TOML has no duration type, and Config exposes time.Duration).
type document struct {
	Config
	Timeouts rawTimeouts `toml:"timeouts"`
}

// Proto is the prototype jail: the dataset whose recursive snapshots the vhosts run on.
type Proto struct {
	Dataset    string `toml:"dataset"`    // zpool/proto
	Mountpoint string `toml:"mountpoint"` // /jail/proto; must stay mounted (.zfs/snapshot lives there)
	EtcChild   string `toml:"etc_child"`  // child dataset with the prototype's /etc: "etc"
}

// EtcDataset is the prototype's /etc dataset (zpool/proto/etc).
func (p Proto) EtcDataset() string { return p.Dataset + "/" + p.EtcChild }

// EtcMountpoint is where the prototype's /etc dataset is mounted (/jail/proto/etc).
func (p Proto) EtcMountpoint() string { return path.Join(p.Mountpoint, "etc") }

// Etc says how a jail's /etc memory file system is made.
type Etc struct {
	Backend string `toml:"backend"` // "md" (md(4) swap-backed, the default) or "tmpfs"
	Size    string `toml:"size"`    // "32m"
}

// Log says where rollout reports what it changed, besides the terminal.
type Log struct {
	// Syslog: one line per vhost, slave or snapshot changed, to syslog (facility daemon, tag
	// rollout). On by default; a host without syslogd is no error.
	Syslog bool `toml:"syslog"`
}

// Replicate says how snapshots are sent to the slaves.
type Replicate struct {
	// SendFlags: "auto" (the default: chosen per slave from both ends' pool features), "none",
	// or some of "-c -L -e -w", used as given
	SendFlags string `toml:"send_flags"`
}

// Vhost is one production jail.
type Vhost struct {
	Name      string            `toml:"-"`
	Dataset   string            `toml:"dataset"`   // zpool/vhost1 (not mounted; holds rollout's state)
	Datasets  []string          `toml:"datasets"`  // children mounted from the fstab: cfg, var, home
	Path      string            `toml:"path"`      // jail root: /jail/vhost1
	Hostname  string            `toml:"hostname"`  // host.hostname
	IP4       []string          `toml:"ip4"`       // ip4.addr
	Interface string            `toml:"interface"` // interface
	ExecStart string            `toml:"exec_start"`
	ExecStop  string            `toml:"exec_stop"`
	Health    []string          `toml:"health"` // argv run inside the jail after start; exit 0 = healthy
	Params    map[string]string `toml:"params"` // further jail(8) parameters, written as given

	// Limits are rctl(8) rules on the jail: resource -> "ACTION=AMOUNT" ("deny=512m"), added
	// when the jail is created and removed when it is removed (see host.Jail.Limits).
	Limits map[string]string `toml:"limits"`
	// Quota, RefQuota and Reservation are zfs(8) properties of the vhost's datasets: child
	// name (one of Datasets) -> size ("10G", "none"). Set by create and at each switch.
	Quota       map[string]string `toml:"quota"`
	RefQuota    map[string]string `toml:"refquota"`
	Reservation map[string]string `toml:"reservation"`

	// Try is the [vhost.NAME.try] table: the test jail `rollout try` runs beside the vhost.
	Try *Try `toml:"try"`
	// TryOf is set on a try's Vhost only: the vhost it tries.
	TryOf string `toml:"-"`
}

// Try names the test jail of a vhost (rollout try): a jail of its own beside production, on
// clones of the vhost's datasets. Its address is its own: production's is never borrowed.
type Try struct {
	Name      string   `toml:"name"`      // jail name; default NAME-try
	Hostname  string   `toml:"hostname"`  // host.hostname; default try.<the vhost's hostname>
	IP4       []string `toml:"ip4"`       // ip4.addr; default none
	Interface string   `toml:"interface"` // default the vhost's
}

// Slave is a host that receives the prototype's snapshots.
type Slave struct {
	Name       string `toml:"-"`
	Address    string `toml:"address"`
	Port       int    `toml:"port"`
	User       string `toml:"user"`
	Identity   string `toml:"identity"`    // private key file; empty: ssh-agent only
	Agent      bool   `toml:"agent"`       // also offer keys from $SSH_AUTH_SOCK
	KnownHosts string `toml:"known_hosts"` // default /root/.ssh/known_hosts
	Pool       string `toml:"pool"`        // the slave's pool; default: the master's
	Bwlimit    string `toml:"bwlimit"`     // e.g. "50M" bytes per second; empty: none
	// Rollout and Config are the slave's own rollout and its configuration file, which the
	// fleet commands (status --hosts, promote --host) run over SSH; Config "": its default.
	Rollout string `toml:"rollout"`
	Config  string `toml:"config"`
}

// LocalHost and AllHosts are words of the fleet commands' --hosts (status --hosts local,slave1,
// promote --canary local/vhost1): this host, and this host with every slave. A slave by
// either name would make them ambiguous.
const (
	LocalHost = "local"
	AllHosts  = "all"
)

// DefaultSlaveRollout is where the port installs rollout, on a slave as here.
const DefaultSlaveRollout = "/usr/local/sbin/rollout"

// Error is a configuration problem, printed as "FILE:LINE: problem".
type Error struct {
	File string
	Line int // 0 when unknown
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

// Load reads and checks a configuration file. Config.Path is then absolute and clean: it is
// written into jail.conf's hooks, which jail(8) runs from its own working directory (rc.d/jail
// runs from /), so a relative --config would name another file or none.
func Load(file string) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", file, err)
	}
	data, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(file, data)
	if err != nil {
		return nil, err
	}
	c.Path = abs
	return c, nil
}

// Parse checks data as the contents of file.
func Parse(file string, data []byte) (*Config, error) {
	var doc document
	doc.Log.Syslog = true // a key left out keeps its default
	d := toml.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	if err := d.Decode(&doc); err != nil {
		return nil, decodeError(file, err)
	}
	c := &doc.Config
	c.Path = file
	lines := keyLines(data)
	fail := func(err error) error {
		var ve *valueError
		if errors.As(err, &ve) {
			// a defaulted value has no line of its own: its table's line (vhost.a for vhost.a.path)
			key := ve.key
			for lines[key] == 0 && strings.Contains(key, ".") {
				key = key[:strings.LastIndex(key, ".")]
			}
			return &Error{File: file, Line: lines[key], Msg: ve.msg}
		}
		return &Error{File: file, Msg: err.Error()}
	}
	if err := c.defaults().check(); err != nil {
		return nil, fail(err)
	}
	t, err := doc.Timeouts.parse()
	if err != nil {
		return nil, fail(err)
	}
	c.Timeouts = t
	return c, nil
}

func decodeError(file string, err error) error {
	var se *toml.StrictMissingError
	if errors.As(err, &se) && len(se.Errors) > 0 {
		e := se.Errors[0]
		row, _ := e.Position()
		return &Error{File: file, Line: row, Msg: fmt.Sprintf("unknown key %q", strings.Join(e.Key(), "."))}
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, _ := de.Position()
		msg := typeMessage(strings.TrimPrefix(de.Error(), "toml: "))
		if k := de.Key(); len(k) > 0 && !strings.Contains(msg, strings.Join(k, ".")) {
			msg = fmt.Sprintf("%s: %s", strings.Join(k, "."), msg)
		}
		return &Error{File: file, Line: row, Msg: msg}
	}
	return &Error{File: file, Msg: err.Error()}
}

// typeError is go-toml's message for a value of the wrong type, which names Go's types:
// "cannot decode TOML string into struct field config.Slave.Port of type int".
var typeError = regexp.MustCompile(`^cannot decode TOML \w+ into .* of type (.+)$`)

// typeMessage says what a value must be in the words of the file, not of Go.
func typeMessage(msg string) string {
	m := typeError.FindStringSubmatch(msg)
	if m == nil {
		return msg
	}
	t := m[1]
	switch {
	case t == "string":
		return "must be a string"
	case t == "bool":
		return "must be true or false"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint"):
		return "must be an integer"
	case strings.HasPrefix(t, "float"):
		return "must be a number"
	case t == "[]string":
		return "must be a list of strings"
	case strings.HasPrefix(t, "[]"):
		return "must be a list"
	}
	return "must be a table"
}

// keyLines maps each dotted key ("vhost.vhost1.dataset") to the line it is set on, so that a
// value that parses but is wrong can be reported where it stands.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	p := unstable.Parser{KeepComments: false}
	p.Reset(data)
	var table []string
	// the offset of a key's raw bytes gives its line; not that of its Data, which for a quoted
	// key with escapes ("a\u0062") is a decoded copy (p.Range on it panicked: found by FuzzParse)
	first := -1
	keyOf := func(n *unstable.Node) []string {
		var k []string
		first = -1
		for it := n.Key(); it.Next(); {
			if first < 0 {
				first = int(it.Node().Raw.Offset)
			}
			k = append(k, string(it.Node().Data))
		}
		return k
	}
	line := func() int {
		if first < 0 || first > len(data) {
			return 0
		}
		return bytes.Count(data[:first], []byte("\n")) + 1
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = keyOf(e)
			k := strings.Join(table, ".")
			if _, ok := lines[k]; !ok {
				lines[k] = line()
			}
		case unstable.KeyValue:
			k := strings.Join(append(append([]string{}, table...), keyOf(e)...), ".")
			lines[k] = line()
		}
	}
	return lines
}

type valueError struct{ key, msg string }

func (e *valueError) Error() string { return e.msg }

func bad(key, format string, a ...any) error {
	return &valueError{key: key, msg: fmt.Sprintf("%s: ", key) + fmt.Sprintf(format, a...)}
}

func (c *Config) defaults() *Config {
	if c.JailRoot == "" {
		c.JailRoot = "/jail"
	}
	if c.StateDir == "" {
		c.StateDir = "/var/run/rollout"
	}
	if c.FstabDir == "" {
		c.FstabDir = "/etc"
	}
	if c.Proto.Dataset == "" && c.Pool != "" {
		c.Proto.Dataset = c.Pool + "/proto"
	}
	if c.Proto.Mountpoint == "" {
		c.Proto.Mountpoint = path.Join(c.JailRoot, "proto")
	}
	if c.Proto.EtcChild == "" {
		c.Proto.EtcChild = "etc"
	}
	if c.Etc.Backend == "" {
		c.Etc.Backend = "md"
	}
	if c.Etc.Size == "" {
		c.Etc.Size = "32m"
	}
	if c.Replicate.SendFlags == "" {
		c.Replicate.SendFlags = "auto"
	}
	for name, v := range c.Vhosts {
		if v == nil {
			v = &Vhost{}
			c.Vhosts[name] = v
		}
		v.Name = name
		if v.Dataset == "" && c.Pool != "" {
			v.Dataset = c.Pool + "/" + name
		}
		if v.Datasets == nil {
			v.Datasets = []string{"cfg", "var", "home"}
		}
		if v.Path == "" {
			v.Path = path.Join(c.JailRoot, name)
		}
		if v.Hostname == "" {
			v.Hostname = name
		}
		if v.ExecStart == "" {
			v.ExecStart = "/bin/sh /etc/rc"
		}
		if v.ExecStop == "" {
			v.ExecStop = "/bin/sh /etc/rc.shutdown"
		}
		if v.Try == nil {
			v.Try = &Try{}
		}
		if v.Try.Name == "" {
			v.Try.Name = name + "-try"
		}
		if v.Try.Hostname == "" {
			v.Try.Hostname = "try." + v.Hostname
		}
		if v.Try.Interface == "" {
			v.Try.Interface = v.Interface
		}
	}
	for name, s := range c.Slaves {
		if s == nil {
			s = &Slave{}
			c.Slaves[name] = s
		}
		s.Name = name
		if s.Port == 0 {
			s.Port = 22
		}
		if s.User == "" {
			s.User = "root"
		}
		if s.KnownHosts == "" {
			s.KnownHosts = "/root/.ssh/known_hosts"
		}
		if s.Pool == "" {
			s.Pool = c.Pool
		}
		if s.Rollout == "" {
			s.Rollout = DefaultSlaveRollout
		}
	}
	return c
}

// checkPath accepts absolute, clean paths without characters that fstab(5), jail.conf(5) or a
// shell would read differently.
func checkPath(key, p string) error {
	if !strings.HasPrefix(p, "/") {
		return bad(key, "%q is not an absolute path", p)
	}
	if path.Clean(p) != p {
		return bad(key, "%q is not a clean path (no '..', '.', '//' or trailing '/')", p)
	}
	for _, r := range p {
		if !(r == '/' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-+:@", r)) {
			return bad(key, "%q: character %q not allowed in a path", p, r)
		}
	}
	return nil
}

func checkName(key, kind, s string) error {
	if err := zfs.ValidateComponent(kind, s); err != nil {
		return bad(key, "%v", err)
	}
	return nil
}

func (c *Config) check() error {
	if c.Pool == "" {
		return bad("pool", "missing (the ZFS pool, e.g. pool = \"zpool\")")
	}
	if err := zfs.ValidatePool(c.Pool); err != nil {
		return bad("pool", "%v", err)
	}
	for _, p := range []struct{ key, val string }{{"jail_root", c.JailRoot}, {"state_dir", c.StateDir}, {"fstab_dir", c.FstabDir}, {"proto.mountpoint", c.Proto.Mountpoint}} {
		if err := checkPath(p.key, p.val); err != nil {
			return err
		}
	}
	if err := zfs.ValidateDataset(c.Proto.Dataset); err != nil {
		return bad("proto.dataset", "%v", err)
	}
	if !strings.HasPrefix(c.Proto.Dataset, c.Pool+"/") {
		return bad("proto.dataset", "%q is not in pool %q", c.Proto.Dataset, c.Pool)
	}
	if err := checkName("proto.etc_child", "dataset", c.Proto.EtcChild); err != nil {
		return err
	}
	switch c.Etc.Backend {
	case "md", "tmpfs":
	default:
		return bad("etc.backend", "%q: must be \"md\" or \"tmpfs\"", c.Etc.Backend)
	}
	if err := checkEtcSize(c.Etc.Size); err != nil {
		return err
	}
	if _, err := replicate.ParseSendFlags(c.Replicate.SendFlags); err != nil {
		return bad("replicate.send_flags", "%q: must be \"auto\", \"none\" or some of \"-c -L -e -w\" (each once, separated by spaces)", c.Replicate.SendFlags)
	}
	names := make([]string, 0, len(c.Vhosts))
	for n := range c.Vhosts {
		names = append(names, n)
	}
	sort.Strings(names)
	seen := newOverlapIndex()
	for _, n := range names {
		v := c.Vhosts[n]
		if err := c.checkVhost(v); err != nil {
			return err
		}
		if err := c.checkOverlap("vhost."+v.Name, v, seen); err != nil {
			return err
		}
		seen.add(v)
	}
	// the tries after every vhost: a try is checked against all of them and the tries before
	c.Tries = map[string]*Vhost{}
	for _, n := range names {
		if err := c.checkTry(c.Vhosts[n], seen); err != nil {
			return err
		}
	}
	names = names[:0]
	for n := range c.Slaves {
		names = append(names, n)
	}
	sort.Strings(names) // with two bad slaves, the one reported is always the same one
	for _, n := range names {
		s := c.Slaves[n]
		k := "slave." + n
		if err := checkName(k, "slave name", n); err != nil {
			return err
		}
		switch n {
		case LocalHost:
			return bad(k, "%q is this host's name in --hosts (and --canary local/VHOST); rename the slave", n)
		case AllHosts:
			return bad(k, "%q means every host in --hosts; rename the slave", n)
		}
		if s.Address == "" {
			return bad(k+".address", "missing")
		}
		if strings.ContainsAny(s.Address, " \t/@;'\"`$[]") {
			return bad(k+".address", "%q is not a host name or address", s.Address)
		}
		if s.Port < 1 || s.Port > 65535 {
			return bad(k+".port", "%d is not a TCP port", s.Port)
		}
		if err := checkName(k+".user", "user", s.User); err != nil {
			return err
		}
		if err := zfs.ValidatePool(s.Pool); err != nil {
			return bad(k+".pool", "%v", err)
		}
		if s.Identity == "" && !s.Agent {
			return bad(k, "needs identity = \"/path/to/key\" or agent = true")
		}
		for _, p := range []struct{ key, val string }{{k + ".identity", s.Identity}, {k + ".known_hosts", s.KnownHosts},
			{k + ".rollout", s.Rollout}, {k + ".config", s.Config}} {
			if p.val != "" {
				if err := checkPath(p.key, p.val); err != nil {
					return err
				}
			}
		}
		if s.Bwlimit != "" && !validAmount(strings.ToLower(s.Bwlimit)) {
			return bad(k+".bwlimit", "%q: must be bytes per second such as 50m", s.Bwlimit)
		}
	}
	// a slave's last replication is the ZFS user property rollout:replicated:NAME, and user
	// property names are lower case
	lower := map[string]string{}
	for _, n := range slices.Sorted(maps.Keys(c.Slaves)) {
		if o, ok := lower[strings.ToLower(n)]; ok {
			return bad("slave."+n, "differs from slave %q only in case (ZFS property names are lower case)", o)
		}
		lower[strings.ToLower(n)] = n
	}
	return nil
}

// checkOverlap refuses a vhost whose jail path or dataset overlaps the prototype's or an
// earlier vhost's (seen). Nested jail paths would mount one jail's fstab inside another's
// root (and a stop of the outer jail unmounts everything below its path); a vhost under the
// prototype's mountpoint would hide the prototype; nested or shared datasets share state
// properties and children, so one vhost's switch would rewrite the other's state.
func (c *Config) checkOverlap(k string, v *Vhost, seen *overlapIndex) error {
	switch {
	case v.Path == c.Proto.Mountpoint:
		return bad(k+".path", "%q is the prototype's mountpoint (proto.mountpoint)", v.Path)
	case within(v.Path, c.Proto.Mountpoint):
		return bad(k+".path", "%q is inside the prototype's mountpoint %q (proto.mountpoint)", v.Path, c.Proto.Mountpoint)
	case within(c.Proto.Mountpoint, v.Path):
		return bad(k+".path", "%q contains the prototype's mountpoint %q (proto.mountpoint)", v.Path, c.Proto.Mountpoint)
	}
	if o := seen.paths[v.Path]; o != nil {
		return bad(k+".path", "%q is already used by %s", v.Path, o.Name)
	}
	for _, a := range ancestors(v.Path) {
		if o := seen.paths[a]; o != nil {
			return bad(k+".path", "%q is inside vhost %s's path %q", v.Path, o.Name, o.Path)
		}
	}
	if o := seen.pathBelow[v.Path]; o != nil {
		return bad(k+".path", "%q contains vhost %s's path %q", v.Path, o.Name, o.Path)
	}
	if o := seen.datasets[v.Dataset]; o != nil {
		return bad(k+".dataset", "%q is already vhost %s's dataset", v.Dataset, o.Name)
	}
	for _, a := range ancestors(v.Dataset) {
		if o := seen.datasets[a]; o != nil {
			return bad(k+".dataset", "%q is inside vhost %s's dataset %q", v.Dataset, o.Name, o.Dataset)
		}
	}
	if o := seen.datasetBelow[v.Dataset]; o != nil {
		return bad(k+".dataset", "%q contains vhost %s's dataset %q", v.Dataset, o.Name, o.Dataset)
	}
	return nil
}

// checkTry checks v's try and adds it to Tries: its name must be a jail name of its own (no
// vhost's, not the prototype's, no other try's), and its jail path and dataset must overlap
// nothing, as a vhost's must not.
func (c *Config) checkTry(v *Vhost, seen *overlapIndex) error {
	k := "vhost." + v.Name + ".try"
	n := v.Try.Name
	if err := checkName(k+".name", "try name", n); err != nil {
		return err
	}
	if strings.ContainsAny(n, ".:") {
		return bad(k+".name", "invalid try name %q: '.' and ':' are not allowed in jail names here", n)
	}
	switch {
	case c.Vhosts[n] != nil:
		return bad(k+".name", "%q is the name of vhost %s", n, n)
	case c.Tries[n] != nil:
		return bad(k+".name", "%q is already the try of vhost %s", n, c.Tries[n].TryOf)
	case n == path.Base(c.Proto.Dataset) || n == path.Base(c.Proto.Mountpoint):
		return bad(k+".name", "%q is the prototype's name", n)
	}
	t := c.TryVhost(v, n)
	if err := checkName(k+".hostname", "hostname", t.Hostname); err != nil {
		return err
	}
	if err := checkJailConf(k, t); err != nil {
		return err
	}
	if err := c.checkOverlap(k, t, seen); err != nil {
		return err
	}
	seen.add(t)
	c.Tries[n] = t
	return nil
}

// TryVhost is the test jail name of vhost v as a Vhost: its datasets (clones of v's) under
// v's dataset's parent, its path beside v's, v's programs, health check, parameters and
// limits, and the try's own hostname and addresses. name is normally v.Try.Name; a try made
// under an earlier name is ended under that name.
func (c *Config) TryVhost(v *Vhost, name string) *Vhost {
	parent := path.Dir(v.Dataset)
	if parent == "." {
		parent = c.Pool
	}
	t := &Vhost{Name: name, TryOf: v.Name, Dataset: parent + "/" + name, Datasets: v.Datasets,
		Path: path.Join(path.Dir(v.Path), name), Hostname: v.Try.Hostname, IP4: v.Try.IP4, Interface: v.Try.Interface,
		ExecStart: v.ExecStart, ExecStop: v.ExecStop, Health: v.Health, Limits: v.Limits, Try: v.Try}
	for pk, pv := range v.Params {
		// production's addresses and names stay production's
		if strings.HasPrefix(pk, "ip4") || strings.HasPrefix(pk, "ip6") || strings.HasPrefix(pk, "host.") || pk == "vnet.interface" || pk == "interface" {
			continue
		}
		if t.Params == nil {
			t.Params = map[string]string{}
		}
		t.Params[pk] = pv
	}
	return t
}

// Jail returns the vhost or the try (by its jail name) named name: what the jail(8) hooks
// (etc init, etc cleanup) are called with.
func (c *Config) Jail(name string) (*Vhost, error) {
	if t, ok := c.Tries[name]; ok {
		return t, nil
	}
	return c.Vhost(name)
}

// overlapIndex holds the vhosts checked so far by path and dataset, and by every ancestor of
// those (to the first vhost below it), so that each vhost is checked against all earlier ones
// in time proportional to its path's depth: a config of 1,000 vhosts is read by every command.
type overlapIndex struct {
	paths, datasets         map[string]*Vhost
	pathBelow, datasetBelow map[string]*Vhost
}

func newOverlapIndex() *overlapIndex {
	return &overlapIndex{paths: map[string]*Vhost{}, datasets: map[string]*Vhost{},
		pathBelow: map[string]*Vhost{}, datasetBelow: map[string]*Vhost{}}
}

func (x *overlapIndex) add(v *Vhost) {
	x.paths[v.Path], x.datasets[v.Dataset] = v, v
	for _, a := range ancestors(v.Path) {
		if x.pathBelow[a] == nil {
			x.pathBelow[a] = v
		}
	}
	for _, a := range ancestors(v.Dataset) {
		if x.datasetBelow[a] == nil {
			x.datasetBelow[a] = v
		}
	}
}

// ancestors lists the directories (or parent datasets) strictly above p, as within sees
// them: "/jail/a" -> "/jail", "/"; "zpool/a/b" -> "zpool/a", "zpool".
func ancestors(p string) []string {
	var out []string
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	if strings.HasPrefix(p, "/") && p != "/" {
		out = append(out, "/")
	}
	return out
}

// within reports whether p lies strictly below dir, both clean paths or dataset names
// ('/' separated).
func within(p, dir string) bool {
	return p != dir && strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

func (c *Config) checkVhost(v *Vhost) error {
	k := "vhost." + v.Name
	// vhost names become jail names, dataset components and file names
	if err := checkName(k, "vhost name", v.Name); err != nil {
		return err
	}
	if strings.ContainsAny(v.Name, ".:") {
		return bad(k, "invalid vhost name %q: '.' and ':' are not allowed in jail names here", v.Name)
	}
	if err := zfs.ValidateDataset(v.Dataset); err != nil {
		return bad(k+".dataset", "%v", err)
	}
	if v.Dataset == c.Proto.Dataset || strings.HasPrefix(v.Dataset, c.Proto.Dataset+"/") || strings.HasPrefix(c.Proto.Dataset, v.Dataset+"/") {
		return bad(k+".dataset", "%q overlaps the prototype %q", v.Dataset, c.Proto.Dataset)
	}
	seen := map[string]bool{}
	for _, d := range v.Datasets {
		if err := checkName(k+".datasets", "dataset", d); err != nil {
			return err
		}
		if d == "etc" || d == "conf" || d == "dev" {
			return bad(k+".datasets", "%q would hide the jail's %s", d, "/"+d)
		}
		if seen[d] {
			return bad(k+".datasets", "%q listed twice", d)
		}
		seen[d] = true
	}
	if err := checkPath(k+".path", v.Path); err != nil {
		return err
	}
	if err := checkName(k+".hostname", "hostname", v.Hostname); err != nil {
		return err
	}
	if err := checkLimits(k, v); err != nil {
		return err
	}
	if err := checkSpace(k, v); err != nil {
		return err
	}
	return checkJailConf(k, v)
}

// checkJailConf applies the host's jail.conf(5) rule to every value of v that goes into
// jail.conf, so that a value jail(8) would read differently ('$' expands a variable) is refused
// now, with its line, rather than when a jail is (re)started.
func checkJailConf(k string, v *Vhost) error {
	for _, s := range []struct{ key, conf, val string }{
		{"hostname", "host.hostname", v.Hostname},
		{"exec_start", "exec.start", v.ExecStart},
		{"exec_stop", "exec.stop", v.ExecStop},
		{"interface", "interface", v.Interface},
	} {
		if err := host.CheckConfValue(s.conf, s.val); err != nil {
			return bad(k+"."+s.key, "%v", err)
		}
	}
	for _, ip := range v.IP4 {
		if err := host.CheckConfValue("ip4.addr", ip); err != nil {
			return bad(k+".ip4", "%v", err)
		}
		if err := checkIP4(ip); err != nil {
			return bad(k+".ip4", "%q: %v", ip, err)
		}
	}
	pks := make([]string, 0, len(v.Params))
	for pk := range v.Params {
		pks = append(pks, pk)
	}
	sort.Strings(pks) // the first bad one is always the same one
	for _, pk := range pks {
		if err := checkName(k+".params", "jail parameter", pk); err != nil {
			return err
		}
		if err := host.CheckConfValue(pk, v.Params[pk]); err != nil {
			return bad(k+".params."+pk, "%v", err)
		}
	}
	return nil
}

// checkIP4 accepts what jail(8) reads in ip4.addr: ADDR, ADDR/PREFIX, IFACE|ADDR and
// IFACE|ADDR/PREFIX, with ADDR an IPv4 address.
func checkIP4(s string) error {
	if iface, addr, ok := strings.Cut(s, "|"); ok {
		if !validIface(iface) {
			return fmt.Errorf("%q is not an interface name", iface)
		}
		s = addr
	}
	var a netip.Addr
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("not an IPv4 address or ADDR/PREFIX: %v", err)
		}
		a = p.Addr()
	} else {
		var err error
		if a, err = netip.ParseAddr(s); err != nil {
			return fmt.Errorf("not an IPv4 address: %v", err)
		}
	}
	if !a.Is4() {
		return fmt.Errorf("not an IPv4 address")
	}
	return nil
}

// validIface accepts FreeBSD interface names: at most IFNAMSIZ-1 (15) letters, digits, '.',
// '_' and '-' (em0, igb0.100, lagg0, epair0a).
func validIface(s string) bool {
	if s == "" || len(s) > 15 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

// checkEtcSize requires a unit: mdconfig -s 32 makes a disk of 32 512-byte sectors and tmpfs
// size=32 is 32 bytes, both far from the 32 MiB meant. The rule is fstabgen's (validSize).
func checkEtcSize(s string) error {
	if s == "" || !strings.ContainsRune("kmgtKMGT", rune(s[len(s)-1])) {
		return bad("etc.size", "%q: needs a unit k, m, g or t, such as 32m (without one, mdconfig reads sectors and tmpfs bytes)", s)
	}
	n, err := strconv.ParseUint(s[:len(s)-1], 10, 32)
	if err != nil || n == 0 {
		return bad("etc.size", "%q: must be a positive whole number with a unit k, m, g or t, such as 32m", s)
	}
	return nil
}

// validAmount accepts a number with an optional k, m, g or t suffix.
func validAmount(s string) bool {
	if s == "" {
		return false
	}
	n := strings.TrimRight(s, "kmgt")
	if len(s)-len(n) > 1 || n == "" {
		return false
	}
	for _, r := range n {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// FstabPath is where a vhost's fstab lives (the paper's /etc/fstab.vhost1).
func (c *Config) FstabPath(v *Vhost) string { return path.Join(c.FstabDir, "fstab."+v.Name) }

// Vhost returns the named vhost, or an error that names it.
func (c *Config) Vhost(name string) (*Vhost, error) {
	if err := zfs.ValidateComponent("vhost name", name); err != nil {
		return nil, err
	}
	v, ok := c.Vhosts[name]
	if !ok {
		return nil, fmt.Errorf("unknown vhost %q (not in %s)", name, c.Path)
	}
	return v, nil
}

// Slave returns the named slave, or an error that names it.
func (c *Config) Slave(name string) (*Slave, error) {
	if err := zfs.ValidateComponent("slave name", name); err != nil {
		return nil, err
	}
	s, ok := c.Slaves[name]
	if !ok {
		return nil, fmt.Errorf("unknown slave %q (not in %s)", name, c.Path)
	}
	return s, nil
}

// VhostNames returns the configured vhosts, sorted.
func (c *Config) VhostNames() []string {
	n := make([]string, 0, len(c.Vhosts))
	for k := range c.Vhosts {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

// parse converts the [timeouts] table, applying the defaults.
func (r rawTimeouts) parse() (Timeouts, error) {
	t := Timeouts{Start: DefaultStartTimeout, Stop: DefaultStopTimeout, Term: DefaultTermTimeout, Health: DefaultHealthTimeout}
	for _, f := range []struct {
		key     string
		raw     *string
		dst     *time.Duration
		seconds bool // written to jail.conf, which takes whole seconds
	}{
		{"timeouts.start", r.Start, &t.Start, true},
		{"timeouts.stop", r.Stop, &t.Stop, false},
		{"timeouts.term", r.Term, &t.Term, true},
		{"timeouts.health", r.Health, &t.Health, false},
	} {
		if f.raw == nil {
			continue
		}
		d, err := parseTimeout(f.key, *f.raw, f.seconds)
		if err != nil {
			return t, err
		}
		*f.dst = d
	}
	if t.Term >= t.Stop {
		return t, bad("timeouts.term", "%v must be less than timeouts.stop (%v): the stop must outlast the wait for SIGKILL", t.Term, t.Stop)
	}
	return t, nil
}

func parseTimeout(key, s string, seconds bool) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad(key, "%q is not a duration such as 90s, 5m or 1h30m", s)
	}
	if d <= 0 {
		return 0, bad(key, "%q: must be more than zero", s)
	}
	if seconds && d%time.Second != 0 {
		return 0, bad(key, "%q: must be whole seconds (jail(8) reads it in seconds)", s)
	}
	return d, nil
}
