package zfs

import (
	"fmt"
	"strings"
)

// MaxNameLen is ZFS_MAX_DATASET_NAME_LEN - 1: the longest full name ZFS accepts.
const MaxNameLen = 255

// The rules follow OpenZFS's zfs_namecheck.c (letters, digits, "_-.:"; no empty, "." or ".."
// component; pool names begin with a letter) and are stricter in one way: ZFS also allows
// spaces, but every name here ends up in fstabs, jail.conf and remote shell commands, so
// rollout refuses them, as it refuses anything a shell would interpret.

func validChar(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
		r == '_' || r == '-' || r == '.' || r == ':'
}

// ValidateComponent checks one element of a dataset path, a snapshot name or a vhost name.
func ValidateComponent(kind, s string) error {
	switch {
	case s == "":
		return fmt.Errorf("invalid %s %q: empty", kind, s)
	case s == "." || s == "..":
		return fmt.Errorf("invalid %s %q: %q is not allowed", kind, s, s)
	case strings.HasPrefix(s, "-"):
		return fmt.Errorf("invalid %s %q: must not begin with '-'", kind, s)
	}
	for _, r := range s {
		if !validChar(r) {
			return fmt.Errorf("invalid %s %q: character %q not allowed (letters, digits, '_', '-', '.', ':')", kind, s, r)
		}
	}
	return nil
}

// ValidateDataset checks a file system name such as "zpool/proto/etc".
func ValidateDataset(name string) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("invalid dataset %q: longer than %d characters", name, MaxNameLen)
	}
	if strings.ContainsAny(name, "@#") {
		return fmt.Errorf("invalid dataset %q: '@' and '#' belong to snapshots and bookmarks", name)
	}
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if err := ValidateComponent("dataset", p); err != nil {
			if p == name {
				return err
			}
			return fmt.Errorf("invalid dataset %q: %w", name, err)
		}
	}
	return validatePool(parts[0], name)
}

func validatePool(pool, full string) error {
	c := pool[0]
	if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
		return fmt.Errorf("invalid dataset %q: pool name %q must begin with a letter", full, pool)
	}
	return nil
}

// ValidatePool checks a pool name.
func ValidatePool(name string) error {
	if strings.Contains(name, "/") {
		return fmt.Errorf("invalid pool %q: '/' not allowed", name)
	}
	if err := ValidateComponent("pool", name); err != nil {
		return err
	}
	return validatePool(name, name)
}

// ValidateSnapshotName checks the part after '@'. With at least "p@" before it, it can be at
// most MaxNameLen-2 long.
func ValidateSnapshotName(name string) error {
	if len(name) > MaxNameLen-2 {
		return fmt.Errorf("invalid snapshot name %q...: %d characters; ZFS allows %d for dataset@snapshot", name[:16], len(name), MaxNameLen)
	}
	if strings.Contains(name, "/") {
		return fmt.Errorf("invalid snapshot name %q: '/' not allowed", name)
	}
	if strings.Contains(name, "@") {
		return fmt.Errorf("invalid snapshot name %q: '@' not allowed", name)
	}
	return ValidateComponent("snapshot name", name)
}

// SplitSnapshot splits and checks a full snapshot name "dataset@name".
func SplitSnapshot(full string) (dataset, name string, err error) {
	ds, snap, ok := strings.Cut(full, "@")
	if !ok {
		return "", "", fmt.Errorf("invalid snapshot %q: no '@'", full)
	}
	if err := ValidateDataset(ds); err != nil {
		return "", "", fmt.Errorf("invalid snapshot %q: %w", full, err)
	}
	if err := ValidateSnapshotName(snap); err != nil {
		return "", "", fmt.Errorf("invalid snapshot %q: %w", full, err)
	}
	if len(full) > MaxNameLen {
		return "", "", fmt.Errorf("invalid snapshot %q: longer than %d characters", full, MaxNameLen)
	}
	return ds, snap, nil
}

// ValidateUserProperty checks a user property name such as "rollout:current".
func ValidateUserProperty(name string) error {
	mod, _, ok := strings.Cut(name, ":")
	if !ok || mod == "" {
		return fmt.Errorf("invalid user property %q: needs a 'module:' prefix", name)
	}
	return ValidateComponent("user property", name)
}
