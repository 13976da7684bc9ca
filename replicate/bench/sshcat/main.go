// Command sshcat pushes N zero bytes through rollout's SSH client (sshx.Runner, the path a
// replication stream takes) into `cat >/dev/null` on a host, and prints the throughput in MB/s.
// replicate/bench/ssh-throughput.sh runs it against a throwaway local sshd.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/rollout-dev/rollout/proto/command"
	"github.com/rollout-dev/rollout/replicate/sshx"
)

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func main() {
	var cfg sshx.Config
	flag.StringVar(&cfg.Address, "host", "127.0.0.1", "address")
	flag.IntVar(&cfg.Port, "port", 22, "port")
	flag.StringVar(&cfg.User, "user", "root", "user")
	flag.StringVar(&cfg.Identity, "identity", "", "private key file")
	flag.StringVar(&cfg.KnownHosts, "known-hosts", "", "known_hosts file")
	n := flag.Int64("bytes", 2<<30, "bytes to send")
	flag.Parse()
	cfg.Name = "bench"
	ctx := context.Background()
	c, err := sshx.Dial(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshcat:", err)
		os.Exit(1)
	}
	defer c.Close()
	start := time.Now()
	err = c.Runner().Run(ctx, command.Cmd{Argv: []string{"sh", "-c", "cat >/dev/null"}, Stdin: io.LimitReader(zeros{}, *n)})
	d := time.Since(start)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sshcat:", err)
		os.Exit(1)
	}
	fmt.Printf("%.1f\n", float64(*n)/d.Seconds()/1e6)
}
