package config

import (
	"maps"
	"math"
	"math/big"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// rctlResources are the resources rctl(8) knows (sys/kern/kern_rctl.c, resourcenames[]), each
// with the flags of sys/kern/kern_racct.c racct_types[] that decide which actions it takes.
var rctlResources = map[string]struct{ deny, throttle, millions bool }{
	// deny: RACCT_DENIABLE, or memoryuse and pcpu, which rctl_rule_add lets through because
	// they are enforced another way; throttle: RACCT_DECAYING, except pcpu (rctl_rule_add);
	// millions: RACCT_IN_MILLIONS, the amount is multiplied by 10^6 in the kernel
	"cputime":         {millions: true},
	"datasize":        {deny: true},
	"stacksize":       {deny: true},
	"coredumpsize":    {deny: true},
	"memoryuse":       {deny: true},
	"memorylocked":    {deny: true},
	"maxproc":         {deny: true},
	"openfiles":       {deny: true},
	"vmemoryuse":      {deny: true},
	"pseudoterminals": {deny: true},
	"swapuse":         {deny: true},
	"nthr":            {deny: true},
	"msgqqueued":      {deny: true},
	"msgqsize":        {deny: true},
	"nmsgq":           {deny: true},
	"nsem":            {deny: true},
	"nsemop":          {deny: true},
	"nshm":            {deny: true},
	"shmsize":         {deny: true},
	"wallclock":       {millions: true},
	"pcpu":            {deny: true, millions: true},
	"readbps":         {throttle: true},
	"writebps":        {throttle: true},
	"readiops":        {throttle: true},
	"writeiops":       {throttle: true},
}

// rctlSignals are the sig* actions of kern_rctl.c's actionnames[].
var rctlSignals = map[string]bool{
	"sighup": true, "sigint": true, "sigquit": true, "sigill": true, "sigtrap": true,
	"sigabrt": true, "sigemt": true, "sigfpe": true, "sigkill": true, "sigbus": true,
	"sigsegv": true, "sigsys": true, "sigpipe": true, "sigalrm": true, "sigterm": true,
	"sigurg": true, "sigstop": true, "sigtstp": true, "sigchld": true, "sigttin": true,
	"sigttou": true, "sigio": true, "sigxcpu": true, "sigxfsz": true, "sigvtalrm": true,
	"sigprof": true, "sigwinch": true, "siginfo": true, "sigusr1": true, "sigusr2": true,
	"sigthr": true,
}

// rctlAmount is what rctl(8) passes to expand_number(3) (usr.bin/rctl/rctl.c expand_amount):
// a whole number with at most one of the suffixes k, m, g, t, p, e (either case, powers of 1024).
var rctlAmount = regexp.MustCompile(`^([0-9]+)([kmgtpeKMGTPE]?)$`)

// checkLimits applies rctl's rules to [vhost.X.limits], so that a rule the kernel would refuse
// (EINVAL, EOPNOTSUPP, ERANGE) is refused when the file loads, not when the jail starts.
func checkLimits(k string, v *Vhost) error {
	for _, res := range slices.Sorted(maps.Keys(v.Limits)) {
		key, val := k+".limits."+res, v.Limits[res]
		r, ok := rctlResources[res]
		if !ok {
			return bad(key, "unknown rctl resource %q (see rctl(8): memoryuse, vmemoryuse, maxproc, openfiles, pcpu, ...)", res)
		}
		action, amount, ok := strings.Cut(val, "=")
		if !ok {
			return bad(key, "%q: must be ACTION=AMOUNT, such as \"deny=512m\"", val)
		}
		switch {
		case action == "deny":
			if !r.deny {
				return bad(key, "%q: %s cannot be denied (rctl(8): use log, devctl, a signal or, for I/O, throttle)", val, res)
			}
		case action == "throttle":
			if !r.throttle {
				return bad(key, "%q: only readbps, writebps, readiops and writeiops can be throttled", val)
			}
		case action == "log" || action == "devctl" || rctlSignals[action]:
		default:
			return bad(key, "%q: unknown action %q (deny, log, devctl, throttle or a signal such as sigterm)", val, action)
		}
		m := rctlAmount.FindStringSubmatch(amount)
		if m == nil {
			return bad(key, "%q: amount %q must be a whole number with an optional k, m, g, t, p or e suffix", val, amount)
		}
		if res == "pcpu" && m[2] != "" {
			return bad(key, "%q: pcpu is a percentage of one CPU (200 is two CPUs), without a suffix", val)
		}
		n, err := strconv.ParseUint(m[1], 10, 64)
		shift := 0
		if m[2] != "" {
			shift = 10 * (strings.IndexByte("kmgtpe", strings.ToLower(m[2])[0]) + 1)
		}
		// the kernel reads the expanded amount into an int64 (kern_rctl.c str2int64) and
		// multiplies the RACCT_IN_MILLIONS ones by 10^6, refusing an overflow with ERANGE
		limit := uint64(math.MaxInt64)
		if r.millions {
			limit /= 1000000
		}
		limit >>= shift
		if err != nil || n > limit {
			return bad(key, "%q: amount %q is too large", val, amount)
		}
	}
	return nil
}

// Rules are v's rctl rules without their subject, "RESOURCE:ACTION=AMOUNT", sorted.
func (v *Vhost) Rules() []string {
	var rs []string
	for _, res := range slices.Sorted(maps.Keys(v.Limits)) {
		rs = append(rs, res+":"+v.Limits[res])
	}
	return rs
}

// zfsSize is a size as zfs(8) reads it (lib/libzfs/libzfs_util.c zfs_nicestrtonum and
// str2shift): a number, a fraction only with a unit, then B or one of K M G T P E Z optionally
// followed by B or iB, in either case.
var zfsSize = regexp.MustCompile(`^(?i)(?:([0-9]+)([kmgtpez](?:i?b)?|b)?|([0-9]*\.[0-9]+)([kmgtpez](?:i?b)?))$`)

// SpaceProps are the space properties rollout sets on a vhost's datasets.
var SpaceProps = []string{"quota", "refquota", "reservation"}

// checkSpace checks [vhost.X.quota], [vhost.X.refquota] and [vhost.X.reservation]: each key is
// one of the vhost's datasets, each value a size or "none".
func checkSpace(k string, v *Vhost) error {
	for _, prop := range SpaceProps {
		m := v.space(prop)
		for _, d := range slices.Sorted(maps.Keys(m)) {
			key, val := k+"."+prop+"."+d, m[d]
			if !slices.Contains(v.Datasets, d) {
				return bad(key, "%q is not one of the vhost's datasets %q", d, v.Datasets)
			}
			if !validZFSSize(val) {
				return bad(key, "%q: must be a size such as 10G, 512M or 1.5T, or \"none\"", val)
			}
		}
	}
	return nil
}

func validZFSSize(s string) bool {
	_, ok := SpaceBytes(s)
	return ok
}

// SpaceBytes is the number of bytes zfs(8) makes of a size this package accepted, as
// `zfs get -p` prints it: "none" is 0, a fraction is truncated (zfs_nicestrtonum).
func SpaceBytes(s string) (uint64, bool) {
	if s == "none" {
		return 0, true
	}
	m := zfsSize.FindStringSubmatch(s)
	if m == nil {
		return 0, false
	}
	num, unit := m[1], m[2]
	if num == "" {
		num, unit = m[3], m[4]
	}
	shift := 0
	if unit != "" && !strings.EqualFold(unit, "b") {
		shift = 10 * (strings.IndexByte("kmgtpez", strings.ToLower(unit)[0]) + 1)
	}
	f, ok := new(big.Float).SetPrec(200).SetString(num)
	if !ok {
		return 0, false
	}
	f.SetMantExp(f, shift)
	if f.Cmp(new(big.Float).SetUint64(math.MaxUint64)) > 0 {
		return 0, false
	}
	n, _ := f.Uint64()
	return n, true
}

func (v *Vhost) space(prop string) map[string]string {
	switch prop {
	case "quota":
		return v.Quota
	case "refquota":
		return v.RefQuota
	}
	return v.Reservation
}

// DatasetProp is one property rollout keeps on a dataset.
type DatasetProp struct{ Dataset, Prop, Value string }

// Space lists v's quota, refquota and reservation settings, by dataset then property. A value
// is passed to zfs(8) as written.
func (v *Vhost) Space() []DatasetProp {
	var ps []DatasetProp
	for _, d := range v.Datasets {
		for _, prop := range SpaceProps {
			if val, ok := v.space(prop)[d]; ok {
				ps = append(ps, DatasetProp{Dataset: v.Dataset + "/" + d, Prop: prop, Value: val})
			}
		}
	}
	return ps
}
