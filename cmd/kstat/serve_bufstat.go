package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/kstat/kstat/internal/bufstat"
	"github.com/kstat/kstat/statsfs"
)

func init() {
	features = append(features, feature{name: "bufstat", start: startBufstat})
}

// startBufstat adds the control file bufstat at the tree's root: reading it gives the report, made
// fresh on each read; writing "debug" or "nodebug" switches the daemon's
// debug logging.
func startBufstat(_ context.Context, d *daemon) error {
	return d.root.AddControl(&statsfs.Control{
		Name: bufstat.ControlName,
		Help: `Kernel buffer statistics report, made fresh on each read; write "debug" or "nodebug" to switch debug logging`,
		Read: func() string { return bufstat.Build(d.root, d.collectors, time.Now()).Text() },
		Write: func(text string) error {
			switch text {
			case "debug":
				d.level.Set(slog.LevelDebug)
				// Logged at debug level: it shows only if the switch worked.
				d.log.Debug("debug logging on", "by", "bufstat")
			case "nodebug":
				d.level.Set(slog.LevelInfo)
				d.log.Info("debug logging off", "by", "bufstat")
			default:
				return fmt.Errorf("%w: bufstat accepts \"debug\" or \"nodebug\", not %q", statsfs.ErrInvalid, text)
			}
			return nil
		},
	})
}
