package replicate

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/proto/zfs"
)

// PropReplicatedPrefix starts the user property on the master's prototype that records a
// slave's last replication: rollout:replicated:SLAVE = "UNIX-TIME SNAPSHOT GUID". It lives on
// the master, so `rollout status` shows every slave without dialling any.
const PropReplicatedPrefix = "rollout:replicated:"

// ReplicatedProp is the property of slave. ZFS user property names are lower case letters,
// digits and ":._-"; slave names are that plus upper case (the configuration refuses two
// slaves that differ only in case), so the name is lowered.
func ReplicatedProp(slave string) (string, error) {
	p := PropReplicatedPrefix + strings.ToLower(slave)
	if len(p) > zfs.MaxNameLen {
		return "", fmt.Errorf("slave %s: property %s is longer than %d characters", slave, p, zfs.MaxNameLen)
	}
	if err := zfs.ValidateUserProperty(p); err != nil {
		return "", fmt.Errorf("slave %s: %w", slave, err)
	}
	return p, nil
}

// RecordArgv records on dataset (the master's prototype) that slave received target (a full
// snapshot name) with guid at time at. One zfs set: one property, one transaction.
func RecordArgv(dataset, slave, target string, guid uint64, at time.Time) ([]string, error) {
	p, err := ReplicatedProp(slave)
	if err != nil {
		return nil, err
	}
	return []string{zfs.Bin, "set", fmt.Sprintf("%s=%d %s %d", p, at.Unix(), target, guid), dataset}, nil
}

// LastReplication is what the master recorded of a slave's last replication.
type LastReplication struct {
	Slave    string    `json:"slave"` // as in the property name: lower case
	Time     time.Time `json:"time"`
	Snapshot string    `json:"snapshot"`
	GUID     uint64    `json:"guid,string"`
}

// ParseReplicated reads one rollout:replicated:SLAVE property.
func ParseReplicated(prop, value string) (LastReplication, error) {
	slave, ok := strings.CutPrefix(prop, PropReplicatedPrefix)
	f := strings.Fields(value)
	if !ok || slave == "" || len(f) != 3 {
		return LastReplication{}, fmt.Errorf("%s=%q: want %sSLAVE=\"UNIX-TIME SNAPSHOT GUID\"", prop, value, PropReplicatedPrefix)
	}
	sec, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		return LastReplication{}, fmt.Errorf("%s=%q: time: %w", prop, value, err)
	}
	guid, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return LastReplication{}, fmt.Errorf("%s=%q: guid: %w", prop, value, err)
	}
	if _, _, err := zfs.SplitSnapshot(f[1]); err != nil {
		return LastReplication{}, fmt.Errorf("%s=%q: %w", prop, value, err)
	}
	return LastReplication{Slave: slave, Time: time.Unix(sec, 0), Snapshot: f[1], GUID: guid}, nil
}

// LastReplications reads every slave's last replication recorded on dataset, by slave (lower
// case), sorted by name. A property that does not parse is an error naming it.
func LastReplications(ctx context.Context, r command.Runner, dataset string) ([]LastReplication, error) {
	props, err := zfs.UserProps(ctx, r, dataset, PropReplicatedPrefix)
	if err != nil {
		return nil, err
	}
	out := make([]LastReplication, 0, len(props))
	for k, v := range props {
		l, err := ParseReplicated(k, v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", dataset, err)
		}
		out = append(out, l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Slave < out[j].Slave })
	return out, nil
}

// recordsArgv lists the properties set on the master's prototype, rollout:replicated:* among
// them (zfs get cannot select user properties by prefix).
func recordsArgv(dataset string) []string {
	return []string{zfs.Bin, "get", "-H", "-p", "-s", "local", "-o", "property,value", "all", dataset}
}

// QueryRecords reads every slave's rollout:replicated record on dataset, by slave. A record
// that does not parse is left out: the next run that finds its slave up to date rewrites it.
func QueryRecords(ctx context.Context, r command.Runner, dataset string) (map[string]LastReplication, error) {
	out, err := command.Output(ctx, r, recordsArgv(dataset)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dataset, err)
	}
	recs := map[string]LastReplication{}
	for _, l := range strings.Split(string(out), "\n") {
		prop, value, ok := strings.Cut(l, "\t")
		if !ok || !strings.HasPrefix(prop, PropReplicatedPrefix) {
			continue
		}
		if rec, err := ParseReplicated(prop, value); err == nil {
			recs[rec.Slave] = rec
		}
	}
	return recs, nil
}
