package etcmerge

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"

	"golang.org/x/sys/unix"
)

// Fingerprint summarises the tree at dir (a vhost's /cfg) so that a later call tells whether
// anything in it changed: it hashes every entry's path, type and mode, owner, size,
// modification and change times (ns) and inode number, in name order. A change of content
// moves the modification time, and a rename, chmod or chown the change time, of the entry or
// its directory. The tree belongs to the jail's root, so it is walked as Build walks it:
// through directory descriptors, with lstat only; nothing but directories is opened (a FIFO
// cannot block it) and no symlink is followed.
func Fingerprint(ctx context.Context, dir string) (string, error) {
	root, err := openRoot(dir)
	if err != nil {
		return "", fmt.Errorf("etc fingerprint: %w", err)
	}
	defer root.Close()
	h := sha256.New()
	var st unix.Stat_t
	if err := unix.Fstat(int(root.Fd()), &st); err != nil {
		return "", fmt.Errorf("etc fingerprint: stat %s: %w", dir, err)
	}
	hashEnt(h, ".", &st)
	err = walkTree(ctx, root, "", func(p string, e *ent) (bool, error) {
		hashEnt(h, p, &e.st)
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("etc fingerprint %s: %w", dir, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashEnt writes one entry: its path (length first: names may hold any byte but '/' and NUL)
// and its lstat fields.
func hashEnt(h hash.Hash, p string, st *unix.Stat_t) {
	var b [8]byte
	put := func(v uint64) {
		binary.BigEndian.PutUint64(b[:], v)
		h.Write(b[:])
	}
	put(uint64(len(p)))
	h.Write([]byte(p))
	mt, ct := st.Mtim, st.Ctim
	for _, v := range []uint64{uint64(st.Mode), uint64(st.Uid), uint64(st.Gid), uint64(st.Size),
		uint64(mt.Sec), uint64(mt.Nsec), uint64(ct.Sec), uint64(ct.Nsec), uint64(st.Ino)} {
		put(v)
	}
}
