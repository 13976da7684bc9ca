package rollout

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/rollout-dev/rollout/fstabgen"
	"github.com/rollout-dev/rollout/rollout/config"
)

// fstabSpec maps the configuration to the fstab fstabgen's golden files pin (moved here from
// fstabgen.SpecFor, whose golden test ran through the configuration).
func TestFstabSpecGolden(t *testing.T) {
	for _, backend := range []string{"md", "tmpfs"} {
		cfg, err := config.Parse("test.toml", []byte("pool = \"zpool\"\n[etc]\nbackend = \""+backend+"\"\n[vhost.vhost1]\n"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := cfg.Vhost("vhost1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := fstabgen.Render(fstabSpec(cfg, v, "2"))
		if err != nil {
			t.Fatal(err)
		}
		want, err := os.ReadFile(filepath.Join("..", "fstabgen", "testdata", "fstab.vhost1."+backend))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:\n%s\nwant:\n%s", backend, got, want)
		}
	}
}
