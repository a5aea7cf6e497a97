package config

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The watcher must see the three ways a config file changes in practice.
func TestWatchFileSeesEveryKindOfSave(t *testing.T) {
	type setup struct {
		name   string
		path   func(dir string) string // the path sluice is given
		change func(t *testing.T, dir string, content string)
	}
	write := func(t *testing.T, p, content string) {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []setup{
		{"in-place write", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) { write(t, filepath.Join(d, "c.yaml"), content) }},
		{"editor rename-on-save", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) {
				tmp := filepath.Join(d, ".c.yaml.swp")
				write(t, tmp, content)
				if err := os.Rename(tmp, filepath.Join(d, "c.yaml")); err != nil {
					t.Fatal(err)
				}
			}},
		{"kubernetes configmap symlink swap", func(d string) string { return filepath.Join(d, "c.yaml") },
			func(t *testing.T, d, content string) {
				// ..data -> ..v1 ; c.yaml -> ..data/c.yaml. A swap writes
				// ..vN, points ..data_tmp at it and renames it over ..data.
				v := filepath.Join(d, fmt.Sprintf("..v%d", time.Now().UnixNano()))
				if err := os.Mkdir(v, 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(v, "c.yaml"), content)
				tmp := filepath.Join(d, "..data_tmp")
				if err := os.Symlink(filepath.Base(v), tmp); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, filepath.Join(d, "..data")); err != nil {
					t.Fatal(err)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if strings.HasPrefix(tc.name, "kubernetes") {
				if err := os.Mkdir(filepath.Join(dir, "..v0"), 0o755); err != nil {
					t.Fatal(err)
				}
				write(t, filepath.Join(dir, "..v0", "c.yaml"), "generation: 0")
				if err := os.Symlink("..v0", filepath.Join(dir, "..data")); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("..data/c.yaml", filepath.Join(dir, "c.yaml")); err != nil {
					t.Fatal(err)
				}
			} else {
				write(t, filepath.Join(dir, "c.yaml"), "generation: 0")
			}
			changes := make(chan struct{}, 10)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := WatchFile(ctx, tc.path(dir), slog.New(slog.NewTextHandler(io.Discard, nil)), func() { changes <- struct{}{} }); err != nil {
				t.Fatal(err)
			}
			for gen := 1; gen <= 3; gen++ {
				// Noise first: an unrelated file, and a save of the same
				// content the file already has.
				write(t, filepath.Join(dir, "unrelated.txt"), fmt.Sprint(gen))
				tc.change(t, dir, fmt.Sprintf("generation: %d", gen-1))
				tc.change(t, dir, fmt.Sprintf("generation: %d", gen))
				select {
				case <-changes:
				case <-time.After(10 * time.Second):
					t.Fatalf("change %d not seen", gen)
				}
				// Exactly one notification per real change.
				select {
				case <-changes:
					t.Fatalf("change %d reported twice (noise or unchanged content counted)", gen)
				case <-time.After(400 * time.Millisecond):
				}
			}
		})
	}
}
