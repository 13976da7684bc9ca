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

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// User properties on a vhost's parent dataset naming the snapshots it runs on and would roll
// back to.
const (
	PropSnapshot = "rollout:snapshot"
	PropPrevious = "rollout:previous"
)

// Slave-side queries, exported so that plans and tests can show the exact commands.
func stateArgv(dataset string) []string {
	return []string{zfs.Bin, "get", "-H", "-p", "-o", "name,property,value", "-t", "filesystem", "-r",
		"receive_resume_token,written", dataset}
}

func inUseArgv(pool string) []string {
	return []string{zfs.Bin, "get", "-H", "-p", "-s", "local", "-o", "name,property,value", "-t", "filesystem", "-r",
		PropSnapshot + "," + PropPrevious, pool}
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
// tokens and `written`, and the snapshots its vhosts use. The three queries run at once, as
// sessions over the one connection, so planning costs one round trip.
func QuerySlave(ctx context.Context, r command.Runner, dataset, pool string) (SlaveState, error) {
	s := SlaveState{Dataset: dataset, Exists: true}
	var wg sync.WaitGroup
	var errs [3]error
	var propsOut, inUseOut []byte
	wg.Add(3)
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
	if s.InUse, err = ParseInUse(inUseOut); err != nil {
		return SlaveState{}, fmt.Errorf("%s: %s: %w", r.Host(), pool, err)
	}
	return s, nil
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
		if !seen[name] {
			seen[name] = true
			fss = append(fss, name)
		}
		switch prop {
		case "receive_resume_token":
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

// ParseInUse maps each snapshot named by a rollout:snapshot or rollout:previous property to the
// datasets that name it.
func ParseInUse(out []byte) (map[string][]string, error) {
	use := map[string][]string{}
	err := getLines(out, func(name, prop, value string) error {
		if (prop == PropSnapshot || prop == PropPrevious) && value != "" && value != "-" {
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
