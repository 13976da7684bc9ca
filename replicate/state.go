package replicate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/rollout-dev/rollout/proto"
	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// User properties on a vhost's parent dataset naming the snapshots it runs on and would roll
// back to.
const (
	PropSnapshot = "rollout:snapshot"
	PropPrevious = "rollout:previous"
	// PropPending is the journal of a promote or rollback under way (or cut short) on the
	// slave: "op=promote from=POOL/proto@2 to=POOL/proto@3 ...". Both snapshots are in use
	// until it is committed or repaired.
	PropPending = "rollout:pending"
)

// DefaultStateDir is rollout's state_dir default, where its lock file is.
const DefaultStateDir = "/var/run/rollout"

// Lockf is FreeBSD's lockf(1). It takes the lock with open(O_EXLOCK), an flock(2) lock, the
// kind rollout.AcquireLock takes, so it sees a slave's running rollout. (flock(1) is not in
// FreeBSD's base system.)
const Lockf = "/usr/bin/lockf"

// lockfBusy is lockf's exit status when the lock is held (sysexits.h EX_TEMPFAIL); lockfCantCreat
// (EX_CANTCREAT) is its status when the file cannot be opened, e.g. no state_dir: no rollout
// ever ran there.
const (
	lockfBusy      = 75
	lockfCantCreat = 73
)

// lockArgv asks whether the slave's rollout lock is held, without waiting (-t 0). -k keeps the
// file: without it lockf unlinks it afterwards, and a rollout that opened it meanwhile would
// lock a file nobody else can find. -s: the exit status says it. The lock is held only for as
// long as /usr/bin/true runs.
func lockArgv(file string) []string {
	return []string{Lockf, "-k", "-s", "-t", "0", file, "/usr/bin/true"}
}

// Slave-side queries, exported so that plans and tests can show the exact commands.
func stateArgv(dataset string) []string {
	return []string{zfs.Bin, "get", "-H", "-p", "-o", "name,property,value", "-t", "filesystem", "-r",
		"receive_resume_token,written,readonly,mounted,canmount,mountpoint", dataset}
}

func inUseArgv(pool string) []string {
	return []string{zfs.Bin, "get", "-H", "-p", "-s", "local", "-o", "name,property,value", "-t", "filesystem", "-r",
		PropSnapshot + "," + PropPrevious + "," + PropPending, pool}
}

// QueryMaster lists the prototype's snapshots on this host.
func QueryMaster(ctx context.Context, r command.Runner, dataset string) (MasterState, error) {
	snaps, err := zfs.ListSnapshots(ctx, r, dataset, true)
	if err != nil {
		return MasterState{}, err
	}
	return MasterState{Dataset: dataset, Snapshots: snaps}, nil
}

// QuerySlave reads what the slave has of the prototype (dataset, in pool): snapshots, resume
// tokens and `written`, the snapshots its vhosts use, and whether rollout runs there (its lock,
// lockFile, is held). The queries run at once, as sessions over the one connection, so
// planning costs one round trip.
func QuerySlave(ctx context.Context, r command.Runner, dataset, pool, lockFile string) (SlaveState, error) {
	s := SlaveState{Dataset: dataset, Exists: true}
	var wg sync.WaitGroup
	var errs [4]error
	var propsOut, inUseOut []byte
	wg.Add(4)
	go func() {
		defer wg.Done()
		s.LockHeld, errs[3] = lockHeld(ctx, r, lockFile)
	}()
	go func() {
		defer wg.Done()
		s.Snapshots, errs[0] = zfs.ListSnapshots(ctx, r, dataset, true)
	}()
	go func() {
		defer wg.Done()
		propsOut, errs[1] = command.Output(ctx, r, stateArgv(dataset)...)
	}()
	go func() {
		defer wg.Done()
		inUseOut, errs[2] = command.Output(ctx, r, inUseArgv(pool)...)
	}()
	wg.Wait()
	if errors.Is(errs[0], zfs.ErrNotExist) || isNotExist(errs[1]) {
		s.Exists, s.Snapshots, errs[0], errs[1], propsOut = false, nil, nil, nil, nil
	}
	for _, err := range errs {
		if err != nil {
			return SlaveState{}, fmt.Errorf("%s: %w", r.Host(), err)
		}
	}
	var err error
	if s.Filesystems, s.ResumeTokens, s.Written, err = parseState(propsOut); err != nil {
		return SlaveState{}, fmt.Errorf("%s: %s: %w", r.Host(), dataset, err)
	}
	if s.NotReadonly, s.Unmounted, err = parseFinished(propsOut); err != nil {
		return SlaveState{}, fmt.Errorf("%s: %s: %w", r.Host(), dataset, err)
	}
	if s.InUse, err = ParseInUse(inUseOut); err != nil {
		return SlaveState{}, fmt.Errorf("%s: %s: %w", r.Host(), pool, err)
	}
	return s, nil
}

// lockHeld reports whether file is locked on r's host. This is a check, not a lock: a rollout
// that starts on the slave after it is not seen (its journal is, at the next replication).
func lockHeld(ctx context.Context, r command.Runner, file string) (bool, error) {
	err := r.Run(ctx, command.Cmd{Argv: lockArgv(file)})
	var ce *command.Error
	switch {
	case err == nil:
		return false, nil
	case errors.As(err, &ce) && ce.ExitCode == lockfBusy:
		return true, nil
	case errors.As(err, &ce) && ce.ExitCode == lockfCantCreat && strings.Contains(ce.Stderr, "No such file or directory"):
		return false, nil
	}
	return false, fmt.Errorf("checking rollout's lock %s: %w", file, err)
}

func isNotExist(err error) bool {
	var ce *command.Error
	return errors.As(err, &ce) && strings.Contains(ce.Stderr, "does not exist")
}

// getLines parses `zfs get -H -o name,property,value` output.
func getLines(out []byte, fn func(name, prop, value string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20) // resume tokens are long
	for sc.Scan() {
		if sc.Text() == "" {
			continue
		}
		f := strings.SplitN(sc.Text(), "\t", 3)
		if len(f) != 3 {
			return fmt.Errorf("unexpected zfs get line %q", sc.Text())
		}
		if err := fn(f[0], f[1], f[2]); err != nil {
			return err
		}
	}
	return sc.Err()
}

func parseState(out []byte) (fss []string, tokens map[string]string, written map[string]uint64, err error) {
	tokens, written = map[string]string{}, map[string]uint64{}
	seen := map[string]bool{}
	err = getLines(out, func(name, prop, value string) error {
		if err := zfs.ValidateDataset(name); err != nil {
			return fmt.Errorf("zfs get line for %q: %w", name, err)
		}
		if !seen[name] {
			seen[name] = true
			fss = append(fss, name)
		}
		switch prop {
		case "receive_resume_token":
			// a token is printable ASCII without blanks; anything else is not one (found by
			// FuzzParseState: a "\r" survived the line split)
			if strings.IndexFunc(value, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
				return fmt.Errorf("receive_resume_token of %s: not a token: %q", name, value)
			}
			if value != "-" && value != "" {
				tokens[name] = value
			}
		case "written":
			if value == "-" {
				return nil
			}
			n, err := strconv.ParseUint(value, 10, 64)
			if err != nil {
				return fmt.Errorf("written of %s: %q", name, value)
			}
			written[name] = n
		}
		return nil
	})
	return fss, tokens, written, err
}

// parseFinished reads, from the same listing, what a receive leaves for after it: file systems
// that are not read-only, and those that would be mounted (canmount=on, a path as mountpoint)
// but are not. A run cut between the receive and these steps leaves them so.
func parseFinished(out []byte) (notReadonly, unmounted []string, err error) {
	props := map[string]map[string]string{}
	var order []string
	err = getLines(out, func(name, prop, value string) error {
		if props[name] == nil {
			props[name] = map[string]string{}
			order = append(order, name)
		}
		props[name][prop] = value
		return nil
	})
	for _, fs := range order {
		p := props[fs]
		if v, ok := p["readonly"]; ok && v != "on" {
			notReadonly = append(notReadonly, fs)
		}
		if p["mounted"] == "no" && p["canmount"] == "on" && strings.HasPrefix(p["mountpoint"], "/") {
			unmounted = append(unmounted, fs)
		}
	}
	return notReadonly, unmounted, err
}

// ParseInUse maps each snapshot named by a rollout:snapshot or rollout:previous property, or as
// the from or to of a rollout:pending journal, to the datasets that name it.
func ParseInUse(out []byte) (map[string][]string, error) {
	use := map[string][]string{}
	err := getLines(out, func(name, prop, value string) error {
		if prop == PropPending {
			// a switch under way (or cut short, until rollout repair) runs on, or goes back
			// to, either snapshot
			for _, f := range strings.Fields(value) {
				k, v, _ := strings.Cut(f, "=")
				if (k == "from" || k == "to") && proto.PropValue(v) != "" {
					if !strings.Contains(v, "@") {
						return fmt.Errorf("%s %s: %s=%q is not a snapshot name", name, prop, k, v)
					}
					use[v] = append(use[v], name)
				}
			}
			return nil
		}
		if (prop == PropSnapshot || prop == PropPrevious) && proto.PropValue(value) != "" {
			if !strings.Contains(value, "@") {
				return fmt.Errorf("%s %s=%q is not a snapshot name", name, prop, value)
			}
			use[value] = append(use[value], name)
		}
		return nil
	})
	for k := range use {
		sort.Strings(use[k])
		use[k] = slicesCompact(use[k])
	}
	return use, err
}
