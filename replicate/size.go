package replicate

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/rollout-dev/rollout/proto/zfs"
)

// HumanBytes is zfs.HumanBytes, kept for replicate's callers.
func HumanBytes(n int64) string { return zfs.HumanBytes(n) }

// ParseRate reads a bandwidth limit in bytes per second: "500k", "50M", "1g", or plain bytes.
// Suffixes are powers of 1024, as everywhere in zfs. "" and "0" mean no limit (0).
func ParseRate(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "/s")
	t = strings.TrimSuffix(t, "b")
	if t == "" {
		return 0, nil
	}
	n, err := zfs.ParseSize(t)
	if err != nil {
		return 0, fmt.Errorf("bandwidth %q: want bytes per second such as 50m", s)
	}
	return n, nil
}

// ParseSendSize reads the estimate from `zfs send -nvP` output: the last line is "size\tBYTES"
// (OpenZFS prints the per-snapshot lines before it; for a resume token, the token's contents).
func ParseSendSize(out []byte) (int64, error) {
	size := int64(-1)
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20) // as getLines: a resume token's contents have long lines
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "size" {
			n, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				return -1, fmt.Errorf("zfs send -nvP: bad size line %q", sc.Text())
			}
			size = n
		}
	}
	if err := sc.Err(); err != nil {
		return -1, fmt.Errorf("zfs send -nvP: %w", err)
	}
	if size < 0 {
		return -1, fmt.Errorf("zfs send -nvP printed no size line")
	}
	return size, nil
}

// EstimateArgv turns a send command into its dry run that prints the stream size.
func EstimateArgv(send []string) []string {
	return append([]string{zfs.Bin, "send", "-n", "-v", "-P"}, send[2:]...)
}
