//go:build linux

package main

// rctl(8) for jail subjects, on cgroup v2.
//
// The rules are the emulation's kernel state (stateDir/rctl/NAME.json, one file per jail
// name), as kern_rctl.c keeps a jail's rules on its prison_racct, found by name: a rule may
// name a jail that does not exist yet, and it outlives the jail (rctl_rule_add links it with
// prison_racct_find(name); only rctl -r takes it off). A jail runs in the cgroup
// /sys/fs/cgroup/rollout-jail-NAME, made at its creation and removed at its removal (jail.go),
// and every rule with the deny action the cgroup can express is written into it:
//
//	memoryuse deny=N  -> memory.max = N, memory.swap.max = 0 (RACCT_RSS)
//	maxproc, nthr     -> pids.max = the smaller (RACCT_NPROC, RACCT_NTHR); pids counts threads,
//	                     so a multi-threaded process counts once per thread against maxproc
//	pcpu deny=P       -> cpu.max = "P*1000 100000": P% of one CPU per 100 ms (RACCT_PCTCPU)
//
// Every other rule is accepted and listed as the kernel does, and not enforced.

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	rctlDir    = stateDir + "/rctl"
	cgroupRoot = "/sys/fs/cgroup"
)

// jailCgroup is the jail's cgroup directory.
func jailCgroup(name string) string { return filepath.Join(cgroupRoot, "rollout-jail-"+name) }

// rctlRule is one rule; Amount as the kernel keeps it, before the 10^6 of RACCT_IN_MILLIONS.
type rctlRule struct {
	Resource, Action string
	Amount           int64
}

// String is kern_rctl.c rctl_rule_to_sbuf without the subject: "resource:action=amount".
func (r rctlRule) String() string { return fmt.Sprintf("%s:%s=%d", r.Resource, r.Action, r.Amount) }

// rctlResources: kern_rctl.c resourcenames[], with kern_racct.c racct_types[]'s flags that
// rctl_rule_add checks: deny (RACCT_DENIABLE, or RSS and PCTCPU), throttle (RACCT_DECAYING
// but not PCTCPU), millions (RACCT_IN_MILLIONS).
var rctlResources = map[string]struct{ deny, throttle, millions bool }{
	"cputime": {millions: true}, "datasize": {deny: true}, "stacksize": {deny: true},
	"coredumpsize": {deny: true}, "memoryuse": {deny: true}, "memorylocked": {deny: true},
	"maxproc": {deny: true}, "openfiles": {deny: true}, "vmemoryuse": {deny: true},
	"pseudoterminals": {deny: true}, "swapuse": {deny: true}, "nthr": {deny: true},
	"msgqqueued": {deny: true}, "msgqsize": {deny: true}, "nmsgq": {deny: true},
	"nsem": {deny: true}, "nsemop": {deny: true}, "nshm": {deny: true}, "shmsize": {deny: true},
	"wallclock": {millions: true}, "pcpu": {deny: true, millions: true},
	"readbps": {throttle: true}, "writebps": {throttle: true}, "readiops": {throttle: true},
	"writeiops": {throttle: true},
}

// rctlActions: kern_rctl.c actionnames[].
var rctlActions = []string{"sighup", "sigint", "sigquit", "sigill", "sigtrap", "sigabrt",
	"sigemt", "sigfpe", "sigkill", "sigbus", "sigsegv", "sigsys", "sigpipe", "sigalrm",
	"sigterm", "sigurg", "sigstop", "sigtstp", "sigchld", "sigttin", "sigttou", "sigio",
	"sigxcpu", "sigxfsz", "sigvtalrm", "sigprof", "sigwinch", "siginfo", "sigusr1", "sigusr2",
	"sigthr", "deny", "log", "devctl", "throttle"}

func rctlFile(name string) string { return filepath.Join(rctlDir, name+".json") }

func loadRules(name string) []rctlRule {
	var rs []rctlRule
	if err := readJSON(rctlFile(name), &rs); err != nil {
		return nil
	}
	return rs
}

func saveRules(name string, rs []rctlRule) error {
	if len(rs) == 0 {
		if err := os.Remove(rctlFile(name)); err != nil && !os.IsNotExist(err) {
			return err
		}
		return nil
	}
	return writeJSON(rctlFile(name), rs)
}

// rctlMain is usr.bin/rctl/rctl.c main: -a RULE, -r FILTER, or FILTER (or nothing) to list.
// Its exit status is the number of arguments that failed, each with a warning.
func rctlMain(args []string) int {
	var mode byte
	for len(args) > 0 && len(args[0]) > 1 && args[0][0] == '-' {
		opt := args[0]
		args = args[1:]
		for _, c := range opt[1:] {
			switch c {
			case 'a', 'r', 'l', 'u':
				if mode != 0 && mode != byte(c) {
					warnx("rctl", "at most one of -a, -l, -r, or -u may be specified")
					return 1
				}
				mode = byte(c)
			case 'h', 'n':
			default:
				fmt.Fprintln(os.Stderr, "usage: rctl [ -h ] [-a rule | -l filter | -r filter | -u filter | filter]")
				return 1
			}
		}
	}
	if mode == 'l' || mode == 'u' {
		warnx("rctl", "bsdemu: -l and -u are not emulated")
		return 1
	}
	if len(args) == 0 {
		if mode != 0 {
			fmt.Fprintln(os.Stderr, "usage: rctl [ -h ] [-a rule | -l filter | -r filter | -u filter | filter]")
			return 1
		}
		args = []string{"::"} // main: show_rules("::")
	}
	unlock, err := lockState()
	if err != nil {
		warnx("rctl", "%v", err)
		return 1
	}
	defer unlock()
	failed := 0
	for _, a := range args {
		var err error
		switch mode {
		case 'a':
			err = rctlAdd(a)
		case 'r':
			err = rctlRemove(a)
		default:
			err = rctlShow(a)
		}
		if err != nil {
			warnx("rctl", "%v", err)
			failed++
		}
	}
	return failed
}

// rctlParse splits "subject:id:resource:action=amount" as kern_rctl.c rctl_string_to_rule
// does, after rctl.c expand_rule ("j" is "jail") and expand_amount (expand_number(3)).
func rctlParse(s string) (id string, r rctlRule, amountSet bool, err error) {
	f := strings.SplitN(s, ":", 4)
	for len(f) < 4 {
		f = append(f, "")
	}
	if f[0] == "j" {
		f[0] = "jail"
	}
	if f[0] != "" && f[0] != "jail" {
		return "", r, false, fmt.Errorf("bsdemu: only jail subjects are emulated (%q)", s)
	}
	// str2value compares names with strcasecmp; rules print the table's (lower-case) name
	id, r.Resource = f[1], strings.ToLower(f[2])
	action, amount, _ := strings.Cut(f[3], "=")
	action = strings.ToLower(action)
	r.Action = action
	if r.Resource != "" {
		if _, ok := rctlResources[r.Resource]; !ok {
			return "", r, false, errInvalid
		}
	}
	if action != "" && !slices.Contains(rctlActions, action) {
		return "", r, false, errInvalid
	}
	if amount != "" {
		n, ok := expandNumber(amount)
		if !ok {
			return "", r, false, fmt.Errorf("malformed rule '%s': invalid numeric value '%s'", s, amount)
		}
		if n > math.MaxInt64 || rctlResources[r.Resource].millions && n > math.MaxInt64/1000000 {
			return "", r, false, syscall.ERANGE
		}
		r.Amount, amountSet = int64(n), true
	}
	return id, r, amountSet, nil
}

// rctlFailed words a failure as rctl.c does: a kernel error after "failed to VERB 'RULE'"
// (warn(3)), a rule rctl.c itself refused as expand_amount's "malformed rule" (warnx(3)).
func rctlFailed(verb, rule string, err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return fmt.Errorf("failed to %s '%s': %s", verb, rule, errno(e))
	}
	return err
}

// errInvalid is rctl_string_to_rule's EINVAL for a name in none of its tables.
var errInvalid = syscall.EINVAL

// expandNumber is libutil's expand_number(3): digits with at most one of the suffixes
// k, m, g, t, p, e (either case, powers of 1024).
func expandNumber(s string) (uint64, bool) {
	shift := 0
	if i := strings.IndexByte("kmgtpe", strings.ToLower(s[len(s)-1:])[0]); i >= 0 {
		shift, s = 10*(i+1), s[:len(s)-1]
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil || n > math.MaxUint64>>shift {
		return 0, false
	}
	return n << shift, true
}

// rctlAdd is sys_rctl_add_rule + rctl_rule_add: the rule must be fully specified, deny only
// for deniable resources (and memoryuse, pcpu), throttle only for the I/O rates; a deny rule
// replaces the deny rule of the same resource, another rule its exact duplicate.
func rctlAdd(s string) error {
	id, r, amountSet, err := rctlParse(s)
	if err != nil {
		return rctlFailed("add rule", s, err)
	}
	if id == "" || r.Resource == "" || r.Action == "" || !amountSet {
		return fmt.Errorf("failed to add rule '%s': %s", s, errno(syscall.EINVAL))
	}
	res := rctlResources[r.Resource]
	if r.Action == "deny" && !res.deny || r.Action == "throttle" && !res.throttle {
		return fmt.Errorf("failed to add rule '%s': %s", s, errno(syscall.EOPNOTSUPP))
	}
	rs := slices.DeleteFunc(loadRules(id), func(o rctlRule) bool {
		return o.Resource == r.Resource && o.Action == r.Action && (r.Action == "deny" || o.Amount == r.Amount)
	})
	rs = append(rs, r)
	if err := saveRules(id, rs); err != nil {
		return err
	}
	return applyRules(id)
}

// rctlRemove is rctl_rule_remove: every rule matching the filter goes; none: ESRCH.
func rctlRemove(s string) error {
	id, f, amountSet, err := rctlParse(s)
	if err != nil {
		return rctlFailed("remove rule", s, err)
	}
	found := false
	for _, name := range rctlNames(id) {
		rs := loadRules(name)
		n := len(rs)
		rs = slices.DeleteFunc(rs, func(r rctlRule) bool { return rctlMatches(r, f, amountSet) })
		if len(rs) == n {
			continue
		}
		found = true
		if err := saveRules(name, rs); err != nil {
			return err
		}
		if err := applyRules(name); err != nil {
			return err
		}
	}
	if !found {
		return fmt.Errorf("failed to remove rule '%s': %s", s, errno(syscall.ESRCH))
	}
	return nil
}

// rctlShow is sys_rctl_get_rules: every matching rule, "jail:NAME:resource:action=amount".
func rctlShow(s string) error {
	id, f, amountSet, err := rctlParse(s)
	if err != nil {
		return rctlFailed("show rules for", s, err)
	}
	for _, name := range rctlNames(id) {
		// rctl_racct_add_rule links a rule with LIST_INSERT_HEAD: the newest is listed first
		rs := loadRules(name)
		slices.Reverse(rs)
		for _, r := range rs {
			if rctlMatches(r, f, amountSet) {
				fmt.Printf("jail:%s:%s\n", name, r)
			}
		}
	}
	return nil
}

// rctlNames is the jail named by a filter, or every jail with rules when it names none.
func rctlNames(id string) []string {
	if id != "" {
		return []string{id}
	}
	var names []string
	ents, _ := os.ReadDir(rctlDir)
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	return names
}

// rctlMatches is kern_rctl.c rctl_rule_matches: an unset field of the filter matches all.
func rctlMatches(r, f rctlRule, amountSet bool) bool {
	return (f.Resource == "" || f.Resource == r.Resource) && (f.Action == "" || f.Action == r.Action) &&
		(!amountSet || f.Amount == r.Amount)
}

// makeJailCgroup creates the jail's cgroup with the controllers the rules map onto, and
// writes the jail's rules into it. Without cgroup v2 nothing is done: the jail runs
// unlimited, as on a kernel without RACCT.
func makeJailCgroup(name string) error {
	if _, err := os.Stat(filepath.Join(cgroupRoot, "cgroup.controllers")); err != nil {
		return nil
	}
	for _, c := range []string{"+memory", "+pids", "+cpu"} {
		// one at a time: a controller the kernel lacks must not keep the others off
		_ = os.WriteFile(filepath.Join(cgroupRoot, "cgroup.subtree_control"), []byte(c), 0o644)
	}
	if err := os.Mkdir(jailCgroup(name), 0o755); err != nil && !os.IsExist(err) {
		return err
	}
	return applyRules(name)
}

// openJailCgroupProcs opens the jail's cgroup.procs for joinJailCgroup; nil when the jail has
// no cgroup (no cgroup v2: the jail runs unlimited).
func openJailCgroupProcs(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(jailCgroup(name), "cgroup.procs"), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

// joinJailCgroup moves the calling process into the jail's cgroup ("0" is the writer, in
// whatever PID namespace it is), as jail_attach(2) makes a process the jail's for racct.
func joinJailCgroup(procs *os.File) error {
	if procs == nil {
		return nil
	}
	defer procs.Close()
	_, err := procs.Write([]byte("0"))
	return err
}

// removeJailCgroup removes the jail's cgroup once its processes are gone; the rules stay.
// jail_remove(2) kills every process of the jail (kern_jail.c prison_remove_one), so any
// left in the cgroup are killed too (cgroup.kill), then the cgroup is removed once the
// kernel reports it unpopulated: reaping takes a while on a loaded machine, so the wait is
// long, and a cgroup that still cannot go is an error, not a silent leftover.
func removeJailCgroup(name string) error {
	dir := jailCgroup(name)
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
	var err error
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); {
		if err = os.Remove(dir); err == nil || os.IsNotExist(err) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("jail %s: its cgroup %s: %v", name, dir, err)
}

// applyRules writes the jail's deny rules into its cgroup, and "max" where it has none.
func applyRules(name string) error {
	dir := jailCgroup(name)
	if _, err := os.Stat(dir); err != nil {
		return nil // no jail of that name now: its creation applies them
	}
	mem, procs, cpu := "max", "max", "max 100000"
	nproc := int64(-1)
	for _, r := range loadRules(name) {
		if r.Action != "deny" {
			continue
		}
		switch r.Resource {
		case "memoryuse":
			mem = strconv.FormatInt(r.Amount, 10)
		case "maxproc", "nthr":
			if nproc < 0 || r.Amount < nproc {
				nproc = r.Amount
			}
		case "pcpu":
			cpu = fmt.Sprintf("%d 100000", max(r.Amount*1000, 1000))
		}
	}
	if nproc >= 0 {
		procs = strconv.FormatInt(nproc, 10)
	}
	for _, w := range []struct{ file, val string }{
		{"memory.max", mem}, {"memory.swap.max", map[bool]string{true: "max", false: "0"}[mem == "max"]},
		{"pids.max", procs}, {"cpu.max", cpu},
	} {
		p := filepath.Join(dir, w.file)
		if _, err := os.Stat(p); err != nil {
			continue // controller not available (memory.swap.max: no swap accounting)
		}
		if err := os.WriteFile(p, []byte(w.val), 0o644); err != nil {
			return fmt.Errorf("%s: %v", p, err)
		}
	}
	return nil
}
