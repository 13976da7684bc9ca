//go:build linux

package main

// jail.conf(5) as jail(8) reads it: usr.sbin/jail/jaillex.l (tokens, comments, quoting),
// usr.sbin/jail/jailparse.y (grammar: global parameters, "name { ... }" blocks, "=", "+=",
// comma lists, bare booleans), usr.sbin/jail/config.c (load_config: variables, the
// intparams table of jail(8)'s own parameters, mount.fstab read line by line) and
// lib/libjail/jail.c (jailparam_type: kernel parameters, "no" booleans, the
// "unknown parameter" message).

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"unicode"
)

// param is one parameter's value list; a bare boolean has no values.
type param struct {
	name string
	vals []string
	set  bool // false for "noX" booleans
}

type jailConf struct {
	name   string
	params map[string]*param
	order  []string
}

func (j *jailConf) str(name string) string {
	if p := j.params[name]; p != nil && len(p.vals) > 0 {
		return p.vals[len(p.vals)-1]
	}
	return ""
}

func (j *jailConf) list(name string) []string {
	if p := j.params[name]; p != nil {
		return p.vals
	}
	return nil
}

func (j *jailConf) has(name string) bool { return j.params[name] != nil }

// boolean follows config.c bool_param: present, not negated, and not "false"/"0".
func (j *jailConf) boolean(name string) bool {
	p := j.params[name]
	if p == nil || !p.set {
		return false
	}
	if len(p.vals) == 0 {
		return true
	}
	v := strings.ToLower(p.vals[len(p.vals)-1])
	return v != "false" && v != "0" && v != "no"
}

func (j *jailConf) add(name string, vals []string, appendVals bool) {
	set := true
	if base, ok := negatedBool(name); ok {
		name, set = base, false
	}
	p := j.params[name]
	if p == nil {
		p = &param{name: name}
		j.params[name] = p
		j.order = append(j.order, name)
	}
	if appendVals {
		p.vals = append(p.vals, vals...)
	} else {
		p.vals = append([]string(nil), vals...)
	}
	p.set = set
}

// jail(8)'s own parameters: config.c intparams[] (FreeBSD 14).
func isJailParam(name string) bool {
	switch name {
	case "allow.dying", "command", "depend", "exec.clean", "exec.consolelog", "exec.created",
		"exec.fib", "exec.jail_user", "exec.poststart", "exec.poststop", "exec.prepare",
		"exec.prestart", "exec.prestop", "exec.release", "exec.start", "exec.stop",
		"exec.system_jail_user", "exec.system_user", "exec.timeout", "interface",
		"ip_hostname", "mount", "mount.devfs", "mount.fdescfs", "mount.procfs",
		"mount.fstab", "stop.timeout", "vnet.interface", "zfs.dataset":
		return true
	}
	return false
}

// Kernel parameters (sysctl security.jail.param.* on FreeBSD 14 amd64), with whether
// each is a boolean (JP_BOOL) and so also takes a "no" form.
func kernelParam(name string) (known, boolean bool) {
	switch name {
	case "jid", "parent", "name", "path", "securelevel", "children.max", "children.cur",
		"enforce_statfs", "host.hostname", "host.domainname", "host.hostuuid", "host.hostid",
		"host", "devfs_ruleset", "osrelease", "osreldate", "cpuset.id", "vnet", "ip4",
		"ip4.addr", "ip6", "ip6.addr", "sysvmsg", "sysvsem", "sysvshm", "linux",
		"linux.osname", "linux.osrelease", "linux.oss_version", "meta", "env":
		return true, false
	case "persist", "dying", "ip4.saddrsel", "ip6.saddrsel", "zfs.mount_snapshot":
		return true, true
	}
	if strings.HasPrefix(name, "allow.") {
		switch strings.TrimPrefix(name, "allow.") {
		case "set_hostname", "sysvipc", "raw_sockets", "chflags", "mount", "mount.devfs",
			"mount.fdescfs", "mount.fusefs", "mount.linprocfs", "mount.linsysfs",
			"mount.nullfs", "mount.procfs", "mount.tmpfs", "mount.zfs", "quotas",
			"socket_af", "mlock", "reserved_ports", "read_msgbuf",
			"unprivileged_proc_debug", "suser", "nfsd", "extattr", "adjtime", "settime",
			"routing", "unprivileged_parent_tampering", "vmm":
			return true, true
		}
	}
	return false, false
}

// negatedBool maps "nopersist" to "persist" and "allow.noraw_sockets" to
// "allow.raw_sockets" (libjail jailparam_type: the "no" prefix on the last component).
func negatedBool(name string) (string, bool) {
	i := strings.LastIndexByte(name, '.') + 1
	if !strings.HasPrefix(name[i:], "no") {
		return "", false
	}
	base := name[:i] + name[i+2:]
	if known, isBool := kernelParam(base); known && isBool {
		return base, true
	}
	switch base {
	case "exec.clean", "mount.devfs", "mount.fdescfs", "mount.procfs", "allow.dying",
		"exec.system_jail_user", "ip_hostname":
		return base, true
	}
	return "", false
}

// checkParams is import_params' test: every name must be jail(8)'s or the kernel's;
// the message is libjail's "unknown parameter: %s".
func (j *jailConf) checkParams() error {
	for _, n := range j.order {
		if isJailParam(n) {
			continue
		}
		if known, _ := kernelParam(n); !known {
			return fmt.Errorf("unknown parameter: %s", n)
		}
	}
	return nil
}

// token kinds of jaillex.l
const (
	tEOF = iota
	tWord
	tLBrace
	tRBrace
	tSemi
	tComma
	tEq
	tPlusEq
)

type token struct {
	kind int
	text string
	line int
	// quoted words never merge with "no"-style parsing and may be empty
	quoted bool
	// space before the token: adjacent strings concatenate only without it
	spaceBefore bool
}

func lexConf(src string) ([]token, error) {
	var toks []token
	line := 1
	space := true
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == '\n':
			line++
			i++
			space = true
		case c == ' ' || c == '\t' || c == '\r':
			i++
			space = true
		case c == '#' || (c == '/' && i+1 < len(src) && src[i+1] == '/'):
			for i < len(src) && src[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(src) && src[i+1] == '*':
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated comment", line)
			}
			line += strings.Count(src[i:i+2+end], "\n")
			i += end + 4
			space = true
		case c == '{' || c == '}' || c == ';' || c == ',' || c == '=':
			k := map[byte]int{'{': tLBrace, '}': tRBrace, ';': tSemi, ',': tComma, '=': tEq}[c]
			toks = append(toks, token{kind: k, text: string(c), line: line})
			i++
			space = true
		case c == '+' && i+1 < len(src) && src[i+1] == '=':
			toks = append(toks, token{kind: tPlusEq, text: "+=", line: line})
			i += 2
			space = true
		case c == '"' || c == '\'':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != c; j++ {
				if src[j] == '\n' {
					line++
				}
				if c == '"' && src[j] == '\\' && j+1 < len(src) {
					j++
					switch src[j] {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case '\n':
						line++
					default:
						b.WriteByte(src[j])
					}
					continue
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated string", line)
			}
			toks = append(toks, token{kind: tWord, text: b.String(), line: line, quoted: true, spaceBefore: space})
			i = j + 1
			space = false
		default:
			j := i
			for j < len(src) && !strings.ContainsRune(" \t\r\n{};,=\"'#", rune(src[j])) &&
				!(src[j] == '+' && j+1 < len(src) && src[j+1] == '=') {
				j++
			}
			toks = append(toks, token{kind: tWord, text: src[i:j], line: line, spaceBefore: space})
			i = j
			space = false
		}
	}
	return append(toks, token{kind: tEOF, line: line}), nil
}

// parseConf returns the jails of a jail.conf, each with the global parameters first
// (jailparse.y: parameters outside a block apply to every jail).
func parseConf(path string) (map[string]*jailConf, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	toks, err := lexConf(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s %s: syntax error", path, err)
	}
	type rawParam struct {
		name string
		vals []string
		app  bool
	}
	var global []rawParam
	jails := map[string][]rawParam{}
	var names []string
	pos := 0
	synerr := func(t token) error {
		if t.kind == tEOF {
			return fmt.Errorf("%s: unexpected EOF", path)
		}
		return fmt.Errorf("%s line %d: %s: syntax error", path, t.line, t.text)
	}
	// value := word+ (adjacent words concatenate), list := value (',' value)*
	parseParam := func() (rawParam, error) {
		p := rawParam{name: toks[pos].text}
		pos++
		if toks[pos].kind != tEq && toks[pos].kind != tPlusEq {
			return p, nil
		}
		p.app = toks[pos].kind == tPlusEq
		pos++
		for {
			if toks[pos].kind != tWord {
				return p, synerr(toks[pos])
			}
			v := toks[pos].text
			pos++
			for toks[pos].kind == tWord && !toks[pos].spaceBefore {
				v += toks[pos].text
				pos++
			}
			p.vals = append(p.vals, v)
			if toks[pos].kind != tComma {
				return p, nil
			}
			pos++
		}
	}
	for toks[pos].kind != tEOF {
		t := toks[pos]
		switch {
		case t.kind == tSemi:
			pos++
		case t.kind == tWord && toks[pos+1].kind == tLBrace:
			name := t.text
			if _, ok := jails[name]; !ok {
				names = append(names, name)
				jails[name] = nil
			}
			pos += 2
			for toks[pos].kind != tRBrace {
				switch toks[pos].kind {
				case tSemi:
					pos++
					continue
				case tWord:
				default:
					return nil, synerr(toks[pos])
				}
				p, err := parseParam()
				if err != nil {
					return nil, err
				}
				if toks[pos].kind != tSemi {
					return nil, synerr(toks[pos])
				}
				pos++
				jails[name] = append(jails[name], p)
			}
			pos++
		case t.kind == tWord:
			p, err := parseParam()
			if err != nil {
				return nil, err
			}
			if toks[pos].kind != tSemi {
				return nil, synerr(toks[pos])
			}
			pos++
			global = append(global, p)
		default:
			return nil, synerr(t)
		}
	}
	out := map[string]*jailConf{}
	for _, n := range names {
		j := &jailConf{name: n, params: map[string]*param{}}
		j.add("name", []string{n}, false)
		for _, p := range append(append([]rawParam(nil), global...), jails[n]...) {
			j.add(p.name, p.vals, p.app)
		}
		j.expandVars()
		out[n] = j
	}
	return out, nil
}

// expandVars substitutes $name and ${name} with another parameter's value (config.c
// load_config, variable substitution).
func (j *jailConf) expandVars() {
	for _, n := range j.order {
		p := j.params[n]
		for i, v := range p.vals {
			if !strings.Contains(v, "$") {
				continue
			}
			var b strings.Builder
			for k := 0; k < len(v); k++ {
				if v[k] != '$' || k+1 >= len(v) {
					b.WriteByte(v[k])
					continue
				}
				var name string
				if v[k+1] == '{' {
					end := strings.IndexByte(v[k:], '}')
					if end < 0 {
						b.WriteByte(v[k])
						continue
					}
					name, k = v[k+2:k+end], k+end
				} else {
					e := k + 1
					for e < len(v) && (unicode.IsLetter(rune(v[e])) || unicode.IsDigit(rune(v[e])) || v[e] == '_' || v[e] == '.') {
						e++
					}
					name, k = v[k+1:e], e-1
				}
				b.WriteString(strings.Join(j.list(name), ","))
			}
			p.vals[i] = b.String()
		}
	}
}

// fstabLines reads mount.fstab files as config.c does: each line is one mount, with
// anything from '#' on cut off (blank lines stay and are skipped when run).
func (j *jailConf) fstabLines() ([]string, error) {
	var out []string
	for _, f := range j.list("mount.fstab") {
		if f == "" {
			continue
		}
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("mount.fstab: %s: %s", f, errno(err))
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			ln := sc.Text()
			if i := strings.IndexByte(ln, '#'); i >= 0 {
				ln = ln[:i]
			}
			out = append(out, ln)
		}
		fh.Close()
	}
	return out, nil
}
