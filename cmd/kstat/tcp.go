package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/kstat/kstat/internal/client"
	"github.com/kstat/kstat/internal/netout"
)

// tcpOptions are the flags of "kstat tcp".
type tcpOptions struct {
	mount    string
	socket   string
	duration time.Duration
	interval time.Duration
	watch    bool
	netns    string
	counter  uint64
}

func init() {
	subcommands = append(subcommands, newTCPCommand)
}

func newTCPCommand() *cobra.Command {
	var opts tcpOptions
	cmd := &cobra.Command{
		Use:   "tcp",
		Short: "Show outgoing TCP packets (KSTAT's nout) and the per-protocol counts",
		Long: `tcp shows what KSTAT counts: nout (outgoing TCP packets, published in steps
of counter packets), the counter and start settings, and the packets and bytes
sent per family (IPv4, IPv6) and protocol (TCP, UDP, other), as counted by a
netfilter BPF program at the LOCAL_OUT hooks.

When a daemon ("kstat serve") runs, tcp reads its counts from its mount
(--mount) or, when nothing is mounted, its control socket (--socket). Otherwise it loads the program itself, counts for
--duration (0: until SIGINT or SIGTERM) in the network namespace --netns, if
given, prints the result and detaches; this needs root, or CAP_BPF,
CAP_PERFMON and CAP_NET_ADMIN.

--watch prints a line every --interval with nout, the TCP packets counted and
their rate in packets per second, until interrupted (or for --duration when
given).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.interval <= 0 {
				return errors.New("--interval must be positive")
			}
			if opts.counter < 1 || opts.counter > netout.MaxStep {
				return fmt.Errorf("--counter must be from 1 to %d", uint64(netout.MaxStep))
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if opts.watch && !cmd.Flags().Changed("duration") {
				opts.duration = 0 // --watch runs until interrupted
			}
			src, err := openTCPSource(cmd.ErrOrStderr(), opts)
			if err != nil {
				return err
			}
			defer src.close()
			if src.svc != nil && !opts.watch {
				fmt.Fprintf(cmd.ErrOrStderr(), "kstat tcp: no daemon; counting with its own program for %v (Ctrl-C stops early)\n", opts.duration)
			}
			return runTCP(ctx, cmd.OutOrStdout(), src, opts)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&opts.mount, "mount", defaultMount, "where a running daemon has mounted its statistics")
	fl.StringVar(&opts.socket, "socket", defaultSocket, "a running daemon's control socket, used when nothing is mounted at --mount")
	fl.DurationVar(&opts.duration, "duration", 5*time.Second, "how long to count without a daemon; with --watch, how long to watch (default: until interrupted)")
	fl.DurationVar(&opts.interval, "interval", time.Second, "time between --watch lines")
	fl.BoolVar(&opts.watch, "watch", false, "follow the counts live with a packets-per-second rate")
	fl.StringVar(&opts.netns, "netns", "", "without a daemon: count in this network namespace (/run/netns/NAME or /proc/PID/ns/net)")
	fl.Uint64Var(&opts.counter, "counter", netout.DefaultStep, "without a daemon: publish nout every this many TCP packets")
	return cmd
}

// tcpReading is one look at the counts.
type tcpReading struct {
	nout    uint64
	counter uint64
	started bool
	totals  netout.Totals
}

// tcpSource gives readings from a daemon (its mount or its control
// socket) or from a program of our own.
type tcpSource struct {
	daemon *client.Client  // the daemon's tree, or nil
	svc    *netout.Service // our own service when there is no daemon
	desc   string
}

// openTCPSource uses the daemon's tree when it has kstat/nout, and loads
// and starts the program otherwise.
func openTCPSource(stderr io.Writer, opts tcpOptions) (*tcpSource, error) {
	done := waitNotice(stderr, "kstat tcp: asking the daemon at %s or %s ...", opts.mount, opts.socket)
	c, err := client.Open(opts.mount, opts.socket)
	if err == nil {
		if _, nerr := c.Get(netout.Dir + "/" + netout.ValueNout); nerr != nil {
			err = nerr
		}
	}
	done()
	if err == nil {
		if opts.netns != "" {
			return nil, fmt.Errorf("--netns is for counting without a daemon; the daemon at %s counts in the namespace it was given", c.Via())
		}
		return &tcpSource{daemon: c, desc: "daemon at " + strings.TrimPrefix(strings.TrimPrefix(c.Via(), "mount "), "socket ")}, nil
	}
	cnt, lerr := netout.Load(netout.Options{})
	if lerr != nil {
		return nil, fmt.Errorf("no daemon's KSTAT counts (%v), and counting here failed: %w", err, lerr)
	}
	s, serr := netout.NewService(cnt, opts.netns)
	if serr == nil {
		serr = s.SetStep(opts.counter)
	}
	if serr == nil {
		serr = s.Start()
	}
	if serr != nil {
		cnt.Close()
		return nil, serr
	}
	desc := "own program"
	if opts.netns != "" {
		desc += " in " + opts.netns
	}
	return &tcpSource{svc: s, desc: desc}, nil
}

func (s *tcpSource) close() {
	if s.svc != nil {
		_ = s.svc.Counter().Close()
	}
}

func (s *tcpSource) read() (tcpReading, error) {
	if s.svc != nil {
		var r tcpReading
		var err error
		if r.totals, err = s.svc.Totals(); err != nil {
			return r, err
		}
		if r.nout, err = s.svc.Nout(); err != nil {
			return r, err
		}
		r.counter, r.started = s.svc.Step(), s.svc.Running()
		return r, nil
	}
	return readDaemon(s.daemon)
}

// readDaemon reads the daemon's kstat/ values.
func readDaemon(c *client.Client) (tcpReading, error) {
	var r tcpReading
	num := func(name string) (uint64, error) {
		e, err := c.Get(netout.Dir + "/" + name)
		if err != nil {
			return 0, err
		}
		v, err := strconv.ParseUint(strings.TrimSpace(e.Text), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s/%s: %w", netout.Dir, name, err)
		}
		return v, nil
	}
	var err error
	if r.nout, err = num(netout.ValueNout); err != nil {
		return r, err
	}
	if r.counter, err = num(netout.KnobCounter); err != nil {
		return r, err
	}
	start, err := num(netout.KnobStart)
	if err != nil {
		return r, err
	}
	r.started = start == 1
	names := [netout.Protos][2]string{
		netout.TCP:   {netout.ValueTCPPackets, netout.ValueTCPBytes},
		netout.UDP:   {netout.ValueUDPPackets, netout.ValueUDPBytes},
		netout.Other: {netout.ValueOtherPackets, netout.ValueOtherBytes},
	}
	for f := netout.Family(0); f < netout.Families; f++ {
		for p := netout.Proto(0); p < netout.Protos; p++ {
			base := f.String() + "/"
			c := &r.totals[f][p]
			if c.Packets, err = num(base + names[p][0]); err != nil {
				return r, err
			}
			if c.Bytes, err = num(base + names[p][1]); err != nil {
				return r, err
			}
		}
	}
	return r, nil
}

// runTCP prints one summary, or --watch lines.
func runTCP(ctx context.Context, w io.Writer, src *tcpSource, opts tcpOptions) error {
	if opts.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.duration)
		defer cancel()
	}
	if !opts.watch {
		if src.svc != nil {
			<-ctx.Done()
		}
		r, err := src.read()
		if err != nil {
			return err
		}
		return printTCP(w, src.desc, r)
	}
	last, err := src.read()
	if err != nil {
		return err
	}
	lastAt := time.Now()
	fmt.Fprintf(w, "# %s; counter %d; rate = TCP packets per second\n", src.desc, last.counter)
	fmt.Fprintf(w, "%-8s %12s %12s %10s\n", "time", "nout", "tcp_packets", "tcp_pps")
	tick := time.NewTicker(opts.interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		r, err := src.read()
		if err != nil {
			return err
		}
		now := time.Now()
		tcp := r.totals.TCPPackets()
		rate := float64(tcp-last.totals.TCPPackets()) / now.Sub(lastAt).Seconds()
		if _, err := fmt.Fprintf(w, "%-8s %12d %12d %10.1f\n", now.Format("15:04:05"), r.nout, tcp, rate); err != nil {
			return err
		}
		last, lastAt = r, now
	}
}

// printTCP prints a reading as a short table.
func printTCP(w io.Writer, desc string, r tcpReading) error {
	state := "stopped"
	if r.started {
		state = "started"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "source   %s (%s)\n", desc, state)
	fmt.Fprintf(&b, "nout     %d packets (published every %d TCP packets)\n", r.nout, r.counter)
	fmt.Fprintf(&b, "%-8s %-6s %12s %14s\n", "family", "proto", "packets", "bytes")
	for f := netout.Family(0); f < netout.Families; f++ {
		for p := netout.Proto(0); p < netout.Protos; p++ {
			c := r.totals[f][p]
			fmt.Fprintf(&b, "%-8s %-6s %12d %14d\n", f, p, c.Packets, c.Bytes)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
