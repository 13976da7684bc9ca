package zfs

import (
	"fmt"
	"strconv"
	"strings"
)

// HumanBytes prints sizes the way zfs does (1.5K, 20.0M), in powers of 1024.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%c", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseSize reads a size as zfs(8) and mdconfig(8) write them: a whole number of bytes with
// an optional k, m, g or t suffix (either case), in powers of 1024.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(s)
	mult := int64(1)
	if t != "" {
		if i := strings.IndexByte("kmgt", t[len(t)-1]); i >= 0 {
			mult = 1 << (10 * (i + 1))
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a number of bytes with an optional k, m, g or t suffix", s)
	}
	return n * mult, nil
}
