package replicate

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// ResumeToken is what a receive_resume_token says, as `zfs send -n -v -t TOKEN` prints it.
type ResumeToken struct {
	ToName   string // the snapshot the interrupted stream was sending: zpool/proto/etc@3
	ToGUID   uint64
	FromGUID uint64 // the base of an incremental stream; 0 for a full one
}

// maxToken bounds a token's length; OpenZFS's are a few hundred characters.
const maxToken = 1 << 16

// tokenRE is a receive_resume_token as zfs_send_resume_token_to_nvlist reads it:
// "VERSION-CHECKSUM-PACKEDLEN-COMPRESSEDHEX", numbers in hex after the version.
var tokenRE = regexp.MustCompile(`^[0-9]+-[0-9a-f]+-[0-9a-f]+-[0-9a-f]+$`)

// ValidToken checks that tok has a resume token's form before it is given to any command.
func ValidToken(tok string) error {
	if len(tok) > maxToken || !tokenRE.MatchString(tok) {
		short := tok
		if len(short) > 40 {
			short = short[:40] + "..."
		}
		return fmt.Errorf("receive_resume_token %q is not a resume token", short)
	}
	return nil
}

// DecodeTokenArgv prints what tok says (a dry run: nothing is sent).
func DecodeTokenArgv(tok string) []string { return []string{zfs.Bin, "send", "-n", "-v", "-t", tok} }

// ParseTokenContents reads `zfs send -n -v -t` output. OpenZFS (libzfs_sendrecv.c,
// zfs_send_resume_impl_cb_impl) prints "resume token contents:" and then nvlist_print's
// "nvlist version: 0" and one "\tNAME = VALUE" line per pair, numbers as 0x%llx, on standard
// output for a dry run; it does so before it looks the snapshots up, so a token whose snapshot
// is gone is decoded all the same.
func ParseTokenContents(out []byte) (ResumeToken, error) {
	var t ResumeToken
	in, haveGUID := false, false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if line == "resume token contents:" {
			in = true
			continue
		}
		// only top-level pairs: one tab (nested nvlists are indented further)
		if !in || !strings.HasPrefix(line, "\t") || strings.HasPrefix(line, "\t\t") {
			continue
		}
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "\t"), " = ")
		if !ok {
			continue
		}
		var err error
		switch k {
		case "toname":
			if t.ToName == "" {
				t.ToName = v
			}
		case "toguid":
			t.ToGUID, err = strconv.ParseUint(v, 0, 64)
			haveGUID = true
		case "fromguid":
			t.FromGUID, err = strconv.ParseUint(v, 0, 64)
		}
		if err != nil {
			return ResumeToken{}, fmt.Errorf("resume token: %s = %q", k, v)
		}
	}
	if t.ToName == "" || !haveGUID {
		return ResumeToken{}, fmt.Errorf("zfs send -n -v -t printed no toname and toguid")
	}
	return t, nil
}

// verifyToken decides whether the resume token tok on slave dataset ds may be sent from. It
// must name ds's counterpart on the master (zpool/proto/etc for tank/proto/etc) and its
// snapshot by guid, and the base of an increment must be one of that dataset's snapshots. A
// token whose snapshot or base is gone (or that zfs calls corrupt) is stale: nothing can be
// sent from it, and the partial receive is discarded. Otherwise why says what is wrong.
func verifyToken(m MasterState, s SlaveState, ds, tok string) (ok, stale bool, why string) {
	if err := ValidToken(tok); err != nil {
		return false, false, err.Error()
	}
	tc, found := s.Tokens[ds]
	if !found || tc.Token == nil {
		if staleResume(fmt.Errorf("%s", tc.Err)) {
			return false, true, "its resume token is unusable (" + tc.Err + ")"
		}
		msg := tc.Err
		if msg == "" {
			msg = "not decoded"
		}
		return false, false, "the master could not read its resume token: " + msg
	}
	t := tc.Token
	rel, _ := relPath(s.Dataset, ds)
	mds := m.Dataset + rel
	dsName, snap, _ := strings.Cut(t.ToName, "@")
	if dsName != mds || snap == "" {
		return false, false, fmt.Sprintf("its resume token names %s, not a snapshot of %s", t.ToName, mds)
	}
	var to *zfs.Snapshot
	base := t.FromGUID == 0
	for i, x := range m.Snapshots {
		if x.Dataset != mds {
			continue
		}
		if x.Name == snap {
			to = &m.Snapshots[i]
		}
		if x.GUID == t.FromGUID {
			base = true
		}
	}
	switch {
	case to == nil:
		return false, true, fmt.Sprintf("%s, which its resume token names, is gone on the master", t.ToName)
	case to.GUID != t.ToGUID:
		return false, false, fmt.Sprintf("its resume token names %s with guid %d, but the master's has guid %d", t.ToName, t.ToGUID, to.GUID)
	case !base:
		return false, true, fmt.Sprintf("the base of its resume token's increment (guid %d) is not a snapshot of %s on the master", t.FromGUID, mds)
	}
	return true, false, ""
}
