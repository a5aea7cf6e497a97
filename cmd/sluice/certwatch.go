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
// after every reload, so a file a reloaded config names for the first
// time is watched from then on. A file no config names any more stays
// watched until exit: its change costs one reload that changes nothing.
type certWatcher struct {
	ctx    context.Context
	gw     *edge.Gateway
	log    *slog.Logger
	reload func()

	mu      sync.Mutex
	watched map[string]bool
}

func (w *certWatcher) watchNew() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.reload == nil { // a reload before the watchers start
		return
	}
	if w.watched == nil {
		w.watched = map[string]bool{}
	}
	for _, f := range w.gw.CertificateFiles() {
		if w.watched[f] {
			continue
		}
		w.watched[f] = true
		if err := config.WatchFile(w.ctx, f, w.log, w.reload); err != nil {
			w.log.Warn("certificate file is not watched; reload with SIGHUP or POST /admin/reload", "file", f, "error", err.Error())
		}
	}
}
