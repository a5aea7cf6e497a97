package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/sluicegw/sluice/edge"
	"github.com/sluicegw/sluice/edge/config"
)

// certWatcher watches the TLS listeners' files (certificates, keys,
// ticket keys) and reloads when one changes. watchNew runs at start and
// after every reload: a file a reloaded config names for the first time
// is watched from then on, and the watch of a file no config names any
// more is closed (each watch holds an inotify instance, and a user has
// 128 of them by default, shared by all its processes). A file whose
// watch failed is tried again at the next reload.
type certWatcher struct {
	ctx    context.Context
	gw     *edge.Gateway
	log    *slog.Logger
	reload func()

	mu      sync.Mutex
	watched map[string]context.CancelFunc // stops the file's watch
}

func (w *certWatcher) watchNew() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reload == nil { // a reload before the watchers start
		return
	}
	if w.watched == nil {
		w.watched = map[string]context.CancelFunc{}
	}
	named := map[string]bool{}
	for _, f := range w.gw.CertificateFiles() {
		named[f] = true
	}
	for f, stop := range w.watched {
		if !named[f] {
			stop()
			delete(w.watched, f)
		}
	}
	for f := range named {
		if w.watched[f] != nil {
			continue
		}
		ctx, stop := context.WithCancel(w.ctx)
		if err := config.WatchFile(ctx, f, w.log, w.reload); err != nil {
			stop()
			w.log.Warn("certificate file is not watched; reload with SIGHUP or POST /admin/reload", "file", f, "error", err.Error())
			continue
		}
		w.watched[f] = stop
	}
}
