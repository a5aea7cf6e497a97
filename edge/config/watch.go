package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchFile calls onChange whenever the content of the file at path
// changes, until ctx is done.
//
// It watches the file's directory, not the file: editors save by writing a
// new file and renaming it over the old one, and Kubernetes swaps a
// ConfigMap by re-pointing a "..data" symlink, and both leave a watch on
// the old inode deaf. Any event in the directory schedules a check after a
// short quiet period (so a burst of events is one reload), and the check
// compares a hash of the content, so touching an unrelated file, or saving
// the same bytes, does nothing.
func WatchFile(ctx context.Context, path string, log *slog.Logger, onChange func()) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	dirs := map[string]bool{filepath.Dir(abs): true}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		dirs[filepath.Dir(real)] = true
	}
	for d := range dirs {
		if err := w.Add(d); err != nil {
			_ = w.Close()
			return fmt.Errorf("watch %s: %w", d, err)
		}
	}
	last := fileHash(abs)
	go func() {
		defer w.Close()
		const quiet = 150 * time.Millisecond
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case _, ok := <-w.Events:
				if !ok {
					return
				}
				timer.Reset(quiet)
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				log.Warn("config watch error", "path", abs, "error", err)
			case <-timer.C:
				h := fileHash(abs)
				if h == nil || bytes.Equal(h, last) {
					continue // mid-swap (file absent) or unchanged
				}
				last = h
				log.Info("config file changed", "path", abs)
				onChange()
			}
		}
	}()
	return nil
}

func fileHash(path string) []byte {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(data)
	return sum[:]
}
