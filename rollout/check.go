package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rollout-dev/rollout/fstabgen"
	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
	"github.com/rollout-dev/rollout/replicate/sshx"
	"github.com/rollout-dev/rollout/rollout/config"
)

// Problem is one thing `rollout check` found wrong: what it concerns ("vhost vhost2", "pool
// zpool", "slave slave2"), what is wrong, and how to fix it.
type Problem struct {
	What    string `json:"what"`
	Problem string `json:"problem"`
	Fix     string `json:"fix"`
}

// String is the one line `rollout check` prints.
func (p Problem) String() string { return p.What + ": " + p.Problem + "; " + p.Fix }

// CheckOptions are the options of Check.
type CheckOptions struct {
	Slaves bool // dial every configured slave
	// Dial connects to a slave and hangs up; nil: over SSH (sshx.Dial), with the host key
	// checked against the slave's known_hosts.
	Dial func(ctx context.Context, s *config.Slave, timeout time.Duration) error
	// SlaveTimeout bounds each dial; 0: DefaultSlaveTimeout.
	SlaveTimeout time.Duration
}

// DefaultSlaveTimeout bounds the connection to one slave in Check.
const DefaultSlaveTimeout = 10 * time.Second

// dsProps is what Check reads of every file system of a pool, in one zfs get.
type dsProps struct{ mountpoint, mounted string }

// Check looks at the host as rollout left it and reports every problem found, each with its
// fix; none: all is well. It only reads (zfs list/get/holds, jls, mount -p, files): it never
// changes anything, so it is safe to run at any time, and from monitoring.
func (m *Manager) Check(ctx context.Context, o CheckOptions) []Problem {
	var ps []Problem
	add := func(what, problem, fix string) {
		ps = append(ps, Problem{What: what, Problem: oneLine(problem), Fix: fix})
	}
	m.checkHost(ctx, add)
	if o.Slaves {
		ps = append(ps, m.checkSlaves(ctx, o)...)
	}
	return ps
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", "; ")), " ")
}

// checkHost checks ZFS, the prototype and the vhosts; add collects its problems.
func (m *Manager) checkHost(ctx context.Context, add func(what, problem, fix string)) {
	cfg := m.Cfg
	// one zfs get per pool for every file system's mountpoint and mounted
	props := map[string]dsProps{}
	badPool := map[string]bool{}
	pools := []string{poolOf(cfg.Proto.Dataset)}
	for _, n := range cfg.VhostNames() {
		if p := poolOf(cfg.Vhosts[n].Dataset); !slices.Contains(pools, p) {
			pools = append(pools, p)
		}
	}
	for _, pool := range pools {
		out, err := command.Output(ctx, m.R, zfs.Bin, "get", "-H", "-p", "-r", "-t", "filesystem", "-o", "name,property,value", "mountpoint,mounted", pool)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && command.ExitCode(err) == -1 {
				add(zfs.Bin, "not found", "rollout needs ZFS: FreeBSD's base system has "+zfs.Bin)
				return
			}
			var ce *command.Error
			if errors.As(err, &ce) && strings.Contains(ce.Stderr, "does not exist") {
				add("pool "+pool, "does not exist or is not imported", "zpool import "+pool+", or set pool (and the datasets) in "+cfg.Path)
			} else {
				add("pool "+pool, "cannot be read: "+err.Error(), "zpool status "+pool+" says why")
			}
			badPool[pool] = true
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Split(line, "\t")
			if len(f) != 3 {
				continue
			}
			p := props[f[0]]
			switch f[1] {
			case "mountpoint":
				p.mountpoint = f[2]
			case "mounted":
				p.mounted = f[2]
			}
			props[f[0]] = p
		}
	}
	versions := m.checkProto(ctx, add, props, badPool)
	needers := map[string][]string{} // snapshot -> the vhosts that need it kept
	tries := map[string][]*tryOf{}   // snapshot -> the live tries that run on it
	for _, name := range cfg.VhostNames() {
		v := cfg.Vhosts[name]
		if badPool[poolOf(v.Dataset)] {
			continue
		}
		need, try := m.checkVhost(ctx, add, v, props, versions)
		for _, s := range need {
			needers[s] = append(needers[s], v.Name)
		}
		if try != nil {
			tries[try.rec.To] = append(tries[try.rec.To], try)
		}
	}
	m.checkHolds(ctx, add, needers, tries)
	m.checkRacct(ctx, add)
}

// sysctlBin reads kern.racct.enable: rctl(8) refuses every rule while it is 0.
const sysctlBin = "/sbin/sysctl"

// checkRacct reports a kernel that would refuse the configured rctl limits: with
// kern.racct.enable=0 (a loader tunable: it cannot be changed at run time) or without RACCT,
// each rctl -a of exec.created fails, and with it the jail's start.
func (m *Manager) checkRacct(ctx context.Context, add func(what, problem, fix string)) {
	var limited []string
	for _, n := range m.Cfg.VhostNames() {
		if len(m.Cfg.Vhosts[n].Limits) > 0 {
			limited = append(limited, n)
		}
	}
	if len(limited) == 0 {
		return
	}
	which := "the limits of vhost " + strings.Join(limited, ", ")
	out, err := command.Output(ctx, m.R, sysctlBin, "-n", "kern.racct.enable")
	var ce *command.Error
	switch {
	case errors.As(err, &ce) && strings.Contains(ce.Stderr, "unknown oid"):
		add("kern.racct.enable", "does not exist: the kernel has no RACCT/RCTL, so "+which+" cannot be applied (their jails do not start)",
			"run a kernel with options RACCT and RCTL (GENERIC has them), with kern.racct.enable=1 in /boot/loader.conf")
	case err != nil:
		add("kern.racct.enable", "cannot be read: "+err.Error(), "sysctl kern.racct.enable says why")
	case strings.TrimSpace(string(out)) == "0":
		add("kern.racct.enable", "is 0, so "+which+" cannot be applied (rctl -a fails, and with it the jail's start)",
			"set kern.racct.enable=1 in /boot/loader.conf and reboot")
	}
}

func poolOf(dataset string) string {
	p, _, _ := strings.Cut(dataset, "/")
	return p
}

// checkProto checks the prototype's datasets, their mounts and snapshots, and returns the
// snapshots (nil when they could not be listed).
func (m *Manager) checkProto(ctx context.Context, add func(what, problem, fix string), props map[string]dsProps, badPool map[string]bool) map[string]proto.Version {
	pc := m.Cfg.Proto
	if badPool[poolOf(pc.Dataset)] {
		return nil
	}
	what := "prototype " + pc.Dataset
	if _, ok := props[pc.Dataset]; !ok {
		add(what, "does not exist", "zfs create -o mountpoint="+pc.Mountpoint+" "+pc.Dataset+" and install the prototype there (README: The prototype), or set proto.dataset in "+m.Cfg.Path)
		return nil
	}
	mountable := func(what, ds, want, fix string) {
		p := props[ds]
		if p.mountpoint != want {
			add(what, "mountpoint is "+p.mountpoint+", the config says "+want, fix)
		} else if p.mounted != "yes" {
			add(what, "not mounted at "+want+" (the vhosts mount its .zfs/snapshot)", "zfs mount "+ds)
		}
	}
	mountable(what, pc.Dataset, pc.Mountpoint, "zfs set mountpoint="+pc.Mountpoint+" "+pc.Dataset+", or set proto.mountpoint in "+m.Cfg.Path)
	etc := pc.EtcDataset()
	if _, ok := props[etc]; !ok {
		add("prototype "+etc, "does not exist (the prototype's /etc)", "zfs create "+etc+" and put the prototype's /etc in it, or set proto.etc_child in "+m.Cfg.Path)
	} else {
		mountable("prototype "+etc, etc, pc.EtcMountpoint(), "zfs inherit mountpoint "+etc)
	}
	vs, err := m.Proto().Versions(ctx)
	if err != nil {
		add(what, "cannot list its snapshots: "+err.Error(), "zfs list -t snapshot -r "+pc.Dataset+" says why")
		return nil
	}
	if len(vs) == 0 {
		add(what, "has no snapshots", "rollout snapshot takes the first")
	}
	byName := map[string]proto.Version{}
	for _, v := range vs {
		byName[v.FullName()] = v
		if !v.Complete() {
			add("snapshot "+v.FullName(), "missing on "+strings.Join(v.Missing, ", ")+" (not taken with zfs snapshot -r)",
				"zfs destroy -r "+v.FullName()+" removes it; rollout snapshot takes a complete one")
		}
	}
	return byName
}

// tryOf is a vhost's live try, whose snapshot must keep the try's own hold.
type tryOf struct {
	vhost string
	rec   *TryRecord
}

// checkVhost checks one vhost and its try, and returns the snapshots it needs kept that exist,
// and its try when it is live and runs on one of them.
func (m *Manager) checkVhost(ctx context.Context, add func(what, problem, fix string), v *config.Vhost, props map[string]dsProps, versions map[string]proto.Version) (need []string, try *tryOf) {
	what := "vhost " + v.Name
	if _, ok := props[v.Dataset]; !ok {
		add(what, "dataset "+v.Dataset+" does not exist", "rollout create "+v.Name+" proto@N creates the vhost")
		return nil, nil
	}
	for _, d := range v.Datasets {
		ds := v.Dataset + "/" + d
		p, ok := props[ds]
		switch {
		case !ok:
			add(what, "dataset "+ds+" does not exist", "zfs create -o mountpoint=legacy "+ds)
		case p.mountpoint != "legacy":
			add(what, "dataset "+ds+" has mountpoint "+p.mountpoint+", not legacy (jail(8) mounts it at "+path.Join(v.Path, d)+" from the fstab)",
				"zfs set mountpoint=legacy "+ds)
		}
	}
	root, running, err := m.Host.Root(ctx, v.Name)
	switch {
	case err != nil:
		add(what, "cannot tell whether its jail runs: "+err.Error(), "jls -j "+v.Name+" says why")
	case running && root != v.Path:
		add(what, "its jail runs at "+root+", the config says path "+v.Path, "rollout stop "+v.Name+", then rollout start "+v.Name)
	case running:
		for _, d := range v.Datasets {
			mp := path.Join(v.Path, d)
			if _, ok := props[v.Dataset+"/"+d]; !ok {
				continue
			}
			fstype, ok, err := m.Host.Mounted(ctx, mp)
			if err != nil {
				add(what, "cannot read the mount table: "+err.Error(), "mount -p says why")
				break
			}
			if !ok || fstype != "zfs" {
				add(what, "its jail runs but "+v.Dataset+"/"+d+" is not mounted at "+mp, "rollout stop "+v.Name+", then rollout start "+v.Name+" (jail(8) mounts it from the fstab)")
			}
		}
	}
	st, err := LoadState(ctx, m.R, v.Name, v.Dataset)
	if err != nil {
		add(what, "cannot read its state: "+strings.TrimPrefix(err.Error(), what+": "), "zfs get -s local all "+v.Dataset+" shows the rollout:* properties; set the bad one right")
		return nil, nil
	}
	if st.Try != nil && m.checkTry(ctx, add, v, st.Try, props, versions) {
		try = &tryOf{vhost: v.Name, rec: st.Try}
	}
	if st.Snapshot == "" {
		add(what, "no snapshot recorded on "+v.Dataset, "rollout create "+v.Name+" proto@N")
		return nil, try
	}
	for _, s := range []struct{ full, role, fix string }{
		{st.Snapshot, "runs on", "rollout promote proto@N " + v.Name + " moves it to one that does"},
		{st.Previous, "would roll back to", "rollout rollback " + v.Name + " --to proto@M names another, when needed"},
	} {
		if s.full == "" {
			continue
		}
		switch ver, ok := versions[s.full]; {
		case versions == nil:
		case !ok:
			add(what, s.role+" "+s.full+", which does not exist", s.fix)
		case !ver.Complete():
			add(what, s.role+" "+s.full+", which is missing on "+strings.Join(ver.Missing, ", "), s.fix)
		default:
			need = append(need, s.full)
		}
	}
	if st.Pending != nil {
		// repair writes the jail.conf and the fstab again: comparing them now tells nothing
		add(what, "an earlier "+st.Pending.Op+" did not finish (rollout:pending on "+v.Dataset+": "+st.Pending.String()+")", "rollout repair "+v.Name)
		return need, try
	}
	m.checkFiles(add, v, st.Snapshot)
	return need, try
}

// checkTry checks vhost v's try (rec, from its journal rollout:try) as status flags it: one
// that did not finish, a live one whose jail is not running. A live try's clones must exist,
// and the snapshot it runs on; it reports whether that snapshot exists (then it must carry
// the try's hold, which checkHolds looks at). A try that did not finish is only reported:
// rollout repair tears down whatever of it there is.
func (m *Manager) checkTry(ctx context.Context, add func(what, problem, fix string), v *config.Vhost, rec *TryRecord, props map[string]dsProps, versions map[string]proto.Version) bool {
	what := "vhost " + v.Name
	_, running, err := m.Host.Root(ctx, rec.Name)
	if err != nil {
		add(what, "cannot tell whether its try's jail runs: "+err.Error(), "jls -j "+rec.Name+" says why")
	} else if p, fix := rec.status(running).problem(v.Name); p != "" {
		add(what, p, fix)
	}
	if rec.State != tryLive {
		return false
	}
	end := "rollout try --end " + v.Name + " ends it (rollout try starts another)"
	t := m.Cfg.TryVhost(v, rec.Name)
	for _, ds := range append([]string{t.Dataset}, prefixed(t.Dataset+"/", t.Datasets)...) {
		if _, ok := props[ds]; !ok {
			add(what, "try "+rec.Name+" is live but its dataset "+ds+" does not exist", end)
		}
	}
	switch ver, ok := versions[rec.To]; {
	case versions == nil:
	case !ok:
		add(what, "try "+rec.Name+" runs on "+rec.To+", which does not exist", end)
	case !ver.Complete():
		add(what, "try "+rec.Name+" runs on "+rec.To+", which is missing on "+strings.Join(ver.Missing, ", "), end)
	default:
		return true
	}
	return false
}

// prefixed is each name with prefix before it.
func prefixed(prefix string, names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = prefix + n
	}
	return out
}

// checkFiles compares the vhost's jail.conf and fstab with what rollout would write.
func (m *Manager) checkFiles(add func(what, problem, fix string), v *config.Vhost, snapshot string) {
	what := "vhost " + v.Name
	write := "rollout fstab " + v.Name + " --write"
	j := m.Jail(v)
	conf := m.Host.ConfFile(j)
	if want, err := m.Host.RenderConf(j); err != nil {
		add(what, "its jail.conf does not render: "+err.Error(), "fix vhost."+v.Name+" in "+m.Cfg.Path)
	} else if have, err := os.ReadFile(conf); errors.Is(err, fs.ErrNotExist) {
		add(what, "jail.conf "+conf+" is missing", write+" writes it")
	} else if err != nil {
		add(what, "jail.conf: "+err.Error(), "make "+conf+" readable, or "+write+" writes it again")
	} else if !bytes.Equal(have, want) {
		add(what, "jail.conf "+conf+" differs from what rollout would write (the config changed, or it was edited by hand)", write+" rewrites it")
	}
	file := m.Cfg.FstabPath(v)
	want, err := m.RenderFstab(v, snapshot)
	if err != nil {
		add(what, "its fstab does not render: "+strings.TrimPrefix(err.Error(), what+": "), "fix vhost."+v.Name+" in "+m.Cfg.Path)
		return
	}
	have, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		add(what, "fstab "+file+" is missing", write+" writes it")
		return
	}
	if err != nil {
		add(what, "fstab: "+err.Error(), "make "+file+" readable, or "+write+" writes it again")
		return
	}
	f, err := fstabgen.Parse(have)
	switch {
	case err != nil:
		add(what, "fstab "+file+" cannot be parsed: "+err.Error(), write+" regenerates it")
	case !f.Generated:
		add(what, "fstab "+file+" was not written by rollout", "move it away, then "+write+" writes rollout's")
	case f.Edited:
		add(what, "fstab "+file+" was edited by hand", write+" regenerates it")
	case f.Snapshot != snapName(snapshot):
		add(what, "fstab "+file+" points at @"+f.Snapshot+", the state says "+snapshot, write+" regenerates it")
	case !bytes.Equal(have, want):
		add(what, "fstab "+file+" differs from what rollout would write (the config changed since)", write+" regenerates it")
	}
}

// checkHolds checks that every snapshot a vhost needs carries rollout's hold, and every one a
// live try runs on the try's own hold, in one zfs holds.
func (m *Manager) checkHolds(ctx context.Context, add func(what, problem, fix string), needers map[string][]string, tries map[string][]*tryOf) {
	snaps := make([]string, 0, len(needers)+len(tries))
	for s := range needers {
		snaps = append(snaps, s)
	}
	for s := range tries {
		if _, ok := needers[s]; !ok {
			snaps = append(snaps, s)
		}
	}
	if len(snaps) == 0 {
		return
	}
	sort.Strings(snaps)
	holds, err := zfs.Holds(ctx, m.R, snaps...)
	if err != nil {
		add("snapshots "+strings.Join(snaps, " "), "cannot list their holds: "+err.Error(), "zfs holds "+strings.Join(snaps, " ")+" says why")
		return
	}
	for _, s := range snaps {
		for _, t := range tries[s] {
			if tag := TryHoldTag(t.rec.Name); !slices.Contains(holds[s], tag) {
				add("snapshot "+s, "has no "+tag+" hold though try "+t.rec.Name+" of vhost "+t.vhost+" runs on it (a zfs destroy could remove it)",
					command.Quote(zfs.HoldArgv(tag, s)))
			}
		}
		if len(needers[s]) > 0 && !slices.Contains(holds[s], proto.HoldTag) {
			add("snapshot "+s, "has no "+proto.HoldTag+" hold though vhost "+strings.Join(needers[s], ", ")+" needs it (a zfs destroy could remove it)",
				command.Quote(zfs.HoldArgv(proto.HoldTag, s)))
		}
	}
}

// checkSlaves dials every configured slave at once, each within the timeout.
func (m *Manager) checkSlaves(ctx context.Context, o CheckOptions) []Problem {
	dial := o.Dial
	if dial == nil {
		dial = m.dialSlave
	}
	timeout := o.SlaveTimeout
	if timeout <= 0 {
		timeout = DefaultSlaveTimeout
	}
	names := make([]string, 0, len(m.Cfg.Slaves))
	for n := range m.Cfg.Slaves {
		names = append(names, n)
	}
	sort.Strings(names)
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			errs[i] = dial(ctx, m.Cfg.Slaves[n], timeout)
		}()
	}
	wg.Wait()
	var ps []Problem
	for i, n := range names {
		if errs[i] != nil {
			ps = append(ps, slaveProblem(m.Cfg.Slaves[n], m.Cfg.Path, errs[i]))
		}
	}
	return ps
}

func (m *Manager) dialSlave(ctx context.Context, s *config.Slave, timeout time.Duration) error {
	c, err := sshx.Dial(ctx, sshx.Config{Name: s.Name, Address: s.Address, Port: s.Port, User: s.User,
		Identity: s.Identity, Agent: s.Agent, KnownHosts: s.KnownHosts, ConnectTimeout: timeout, Logger: m.Log})
	if err != nil {
		return err
	}
	return c.Close()
}

// slaveProblem says what a failed dial means for the admin.
func slaveProblem(s *config.Slave, cfgPath string, err error) Problem {
	p := Problem{What: "slave " + s.Name}
	msg := strings.TrimPrefix(oneLine(err.Error()), s.Name+": ")
	var hk *sshx.HostKeyError
	var ne net.Error
	switch {
	case errors.As(err, &hk):
		p.Problem, p.Fix = oneLine(hk.Problem), hk.Fix
	case strings.HasPrefix(msg, "known_hosts:"):
		p.Problem = msg
		p.Fix = fmt.Sprintf("verify the slave's fingerprint, then add it with: ssh-keyscan -p %d %s >> %s", s.Port, s.Address, s.KnownHosts)
	case errors.As(err, &ne) || strings.HasPrefix(msg, "connect "):
		p.Problem = "unreachable: " + msg
		p.Fix = fmt.Sprintf("check slave.%s.address and port in %s, and that sshd runs there; rollout check --no-slaves skips the slaves", s.Name, cfgPath)
	default:
		p.Problem = msg
		p.Fix = fmt.Sprintf("check slave.%s.user, identity and agent in %s and the slave's authorized_keys", s.Name, cfgPath)
	}
	return p
}
