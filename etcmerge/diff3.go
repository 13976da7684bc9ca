package etcmerge

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// A line-based three-way merge, as freebsd-update(8) and etcupdate(8) do for /etc: the changes
// from the old base to the new one are applied onto the vhost's version. Files in /etc are
// small, so the line diff is Myers' O((N+M)D) one, with D capped: two files that share almost
// nothing are better merged by hand than by a diff that takes minutes.

// maxEdits caps Myers' D (edits between two files, after their common head and tail are
// dropped); the trace it keeps grows as D².
const maxEdits = 4000

var errTooDifferent = errors.New("the versions differ in too many lines to merge")

// splitLines splits data into lines, each keeping its "\n"; a last line without one is kept too.
func splitLines(data []byte) []string {
	if len(data) == 0 {
		return nil
	}
	s := string(data)
	out := make([]string, 0, strings.Count(s, "\n")+1)
	for len(s) > 0 {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// matchLines returns, for each line of a, the index of the line of b it is matched with in a
// longest common subsequence, or -1. The matches are increasing.
func matchLines(a, b []string) ([]int, error) {
	m := make([]int, len(a))
	for i := range m {
		m[i] = -1
	}
	// common head and tail: most /etc edits touch a few lines in the middle
	pre := 0
	for pre < len(a) && pre < len(b) && a[pre] == b[pre] {
		m[pre] = pre
		pre++
	}
	suf := 0
	for suf < len(a)-pre && suf < len(b)-pre && a[len(a)-1-suf] == b[len(b)-1-suf] {
		m[len(a)-1-suf] = len(b) - 1 - suf
		suf++
	}
	ma, mb := a[pre:len(a)-suf], b[pre:len(b)-suf]
	if len(ma) == 0 || len(mb) == 0 {
		return m, nil
	}
	ids := map[string]int{}
	intern := func(ls []string) []int {
		out := make([]int, len(ls))
		for i, l := range ls {
			id, ok := ids[l]
			if !ok {
				id = len(ids)
				ids[l] = id
			}
			out[i] = id
		}
		return out
	}
	pairs, err := myers(intern(ma), intern(mb))
	if err != nil {
		return nil, err
	}
	for _, p := range pairs {
		m[pre+p[0]] = pre + p[1]
	}
	return m, nil
}

// myers returns the matched index pairs of a shortest edit script from a to b.
func myers(a, b []int) ([][2]int, error) {
	n, m := len(a), len(b)
	limit := n + m
	off := limit + 1
	v := make([]int, 2*limit+3)
	var trace [][]int // trace[d]: v[-d..d] after step d
	d := 0
search:
	for ; d <= limit; d++ {
		if d > maxEdits {
			return nil, errTooDifferent
		}
		for k := -d; k <= d; k += 2 {
			var x int
			if k == -d || (k != d && v[off+k-1] < v[off+k+1]) {
				x = v[off+k+1]
			} else {
				x = v[off+k-1] + 1
			}
			y := x - k
			for x < n && y < m && a[x] == b[y] {
				x++
				y++
			}
			v[off+k] = x
			if x >= n && y >= m {
				break search
			}
		}
		trace = append(trace, append([]int(nil), v[off-d:off+d+1]...))
	}
	var pairs [][2]int
	x, y := n, m
	for ; d > 0; d-- {
		prev := trace[d-1] // index k+(d-1)
		k := x - y
		var pk int
		if k == -d || (k != d && prev[k-1+d-1] < prev[k+1+d-1]) {
			pk = k + 1
		} else {
			pk = k - 1
		}
		px := prev[pk+d-1]
		py := px - pk
		// the edit: down (y+1) from diagonal k+1, right (x+1) from k-1; then the snake to (x, y)
		sx, sy := px+1, py
		if pk == k+1 {
			sx, sy = px, py+1
		}
		for x > sx && y > sy {
			x--
			y--
			pairs = append(pairs, [2]int{x, y})
		}
		x, y = px, py
	}
	for x > 0 && y > 0 {
		x--
		y--
		pairs = append(pairs, [2]int{x, y})
	}
	for i, j := 0, len(pairs)-1; i < j; i, j = i+1, j-1 {
		pairs[i], pairs[j] = pairs[j], pairs[i]
	}
	return pairs, nil
}

// Labels name the three versions in conflict markers.
type Labels struct {
	Mine, Old, New string // "/cfg (vhost)", "proto@1", "proto@2"
}

// merge3 merges old→new into mine: the result and how many regions conflict (marked in the
// result with <<<<<<< ||||||| ======= >>>>>>>). Regions changed the same way on both sides
// are taken once.
func merge3(old, mine, new []byte, l Labels) ([]byte, int, error) {
	o, a, b := splitLines(old), splitLines(mine), splitLines(new)
	ma, err := matchLines(o, a)
	if err != nil {
		return nil, 0, err
	}
	mb, err := matchLines(o, b)
	if err != nil {
		return nil, 0, err
	}
	var out bytes.Buffer
	conflicts := 0
	unstable := func(oc, ac, bc []string) {
		switch {
		case equalLines(oc, ac):
			writeLines(&out, bc)
		case equalLines(oc, bc), equalLines(ac, bc):
			writeLines(&out, ac)
		default:
			conflicts++
			fmt.Fprintf(&out, "<<<<<<< %s\n", l.Mine)
			writeSection(&out, ac)
			fmt.Fprintf(&out, "||||||| %s\n", l.Old)
			writeSection(&out, oc)
			out.WriteString("=======\n")
			writeSection(&out, bc)
			fmt.Fprintf(&out, ">>>>>>> %s\n", l.New)
		}
	}
	lo, la, lb := 0, 0, 0
	for {
		i := 0
		for lo+i < len(o) && ma[lo+i] == la+i && mb[lo+i] == lb+i {
			i++
		}
		if i > 0 {
			writeLines(&out, o[lo:lo+i])
			lo, la, lb = lo+i, la+i, lb+i
			continue
		}
		// the next line of old that both sides kept ends this unstable region
		j := lo
		for j < len(o) && (ma[j] < 0 || mb[j] < 0) {
			j++
		}
		if j == len(o) {
			if lo < len(o) || la < len(a) || lb < len(b) {
				unstable(o[lo:], a[la:], b[lb:])
			}
			break
		}
		unstable(o[lo:j], a[la:ma[j]], b[lb:mb[j]])
		lo, la, lb = j, ma[j], mb[j]
	}
	return out.Bytes(), conflicts, nil
}

func equalLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func writeLines(w *bytes.Buffer, ls []string) {
	for _, l := range ls {
		w.WriteString(l)
	}
}

// writeSection writes a conflict's side so that the next marker starts a line.
func writeSection(w *bytes.Buffer, ls []string) {
	writeLines(w, ls)
	if len(ls) > 0 && !strings.HasSuffix(ls[len(ls)-1], "\n") {
		w.WriteByte('\n')
	}
}
