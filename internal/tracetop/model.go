package tracetop

import (
	"strings"
	"time"

	"charm.land/bubbles/v2/help"
	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/table"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"github.com/kstat/kstat/internal/tracer"
)

// keyMap is the top's keys; its short help is the footer.
type keyMap struct {
	Quit, Help, Sort, SortBack, Filter, Pause, Cumulative, Group key.Binding
	Up, Down, PageUp, PageDown, Top, Bottom                      key.Binding
}

var keys = keyMap{
	Quit:       key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	Help:       key.NewBinding(key.WithKeys("h", "?"), key.WithHelp("h", "help")),
	Sort:       key.NewBinding(key.WithKeys(">", "s"), key.WithHelp(">/<", "sort")),
	SortBack:   key.NewBinding(key.WithKeys("<"), key.WithHelp("<", "sort by the previous column")),
	Filter:     key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
	Pause:      key.NewBinding(key.WithKeys("p", "space"), key.WithHelp("p", "pause")),
	Cumulative: key.NewBinding(key.WithKeys("c"), key.WithHelp("c", "rates/totals")),
	Group:      key.NewBinding(key.WithKeys("g", "tab"), key.WithHelp("g", "columns")),
	Up:         key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
	Down:       key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
	PageUp:     key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up")),
	PageDown:   key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "page down")),
	Top:        key.NewBinding(key.WithKeys("home"), key.WithHelp("home", "first row")),
	Bottom:     key.NewBinding(key.WithKeys("end"), key.WithHelp("end", "last row")),
}

// ShortHelp is the footer.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Quit, k.Help, k.Sort, k.Filter, k.Pause, k.Cumulative, k.Group}
}

// FullHelp is the help screen's list of keys.
func (k keyMap) FullHelp() [][]key.Binding {
	sortNext := k.Sort
	sortNext.SetHelp(">/s", "sort by the next column")
	return [][]key.Binding{
		{k.Quit, k.Help, sortNext, k.SortBack, k.Filter},
		{k.Pause, k.Cumulative, k.Group},
		{k.Up, k.Down, k.PageUp, k.PageDown, k.Top, k.Bottom},
	}
}

// Options configure a Model.
type Options struct {
	Start    time.Time     // when the tracer started counting
	Interval time.Duration // between samples
	Duration time.Duration // end after this long (0: at q)
	Settings Settings      // the first sort, mode and filter
}

// Model is the top: a bubbletea model that samples a Source every
// interval and shows the frame in a table that fits the terminal.
type Model struct {
	src  Source
	opts Options

	settings  Settings
	group     int // index into Groups
	paused    bool
	showHelp  bool
	filtering bool
	ended     bool // by Duration
	err       error

	prev, cur Sample
	frame     Frame

	width, height int
	table         table.Model
	input         textinput.Model
	help          help.Model
}

type sampleMsg struct {
	s     Sample
	err   error
	final bool
}

type endMsg struct{}

// New makes the top of src.
func New(src Source, opts Options) Model {
	if opts.Settings.Sort == "" {
		opts.Settings.Sort = tracer.DefaultSort
	}
	in := textinput.New()
	in.Prompt = "filter (pid or command, enter keeps, esc clears): "
	t := table.New(table.WithFocused(true), table.WithKeyMap(table.KeyMap{
		LineUp: keys.Up, LineDown: keys.Down, PageUp: keys.PageUp, PageDown: keys.PageDown,
		GotoTop: keys.Top, GotoBottom: keys.Bottom,
	}))
	t.SetStyles(table.Styles{
		Header:   lipgloss.NewStyle().Bold(true).PaddingRight(1),
		Cell:     lipgloss.NewStyle().PaddingRight(1),
		Selected: lipgloss.NewStyle().Reverse(true),
	})
	m := Model{src: src, opts: opts, settings: opts.Settings, table: t, input: in, help: help.New()}
	m.rebuild()
	return m
}

func (m Model) sample(after time.Duration, final bool) tea.Cmd {
	read := func() tea.Msg {
		s, err := Read(m.src)
		return sampleMsg{s: s, err: err, final: final}
	}
	if after <= 0 {
		return read
	}
	return tea.Tick(after, func(time.Time) tea.Msg { return read() })
}

// Init starts sampling, and the end timer when there is a Duration.
func (m Model) Init() tea.Cmd {
	cmds := []tea.Cmd{m.sample(m.opts.Interval, false)}
	if m.opts.Duration > 0 {
		cmds = append(cmds, tea.Tick(m.opts.Duration, func(time.Time) tea.Msg { return endMsg{} }))
	}
	return tea.Batch(cmds...)
}

// Update handles samples, the end timer, the window size and keys.
func (m Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case sampleMsg:
		if msg.err != nil {
			m.err = msg.err
			return m, tea.Quit
		}
		if !m.paused || msg.final {
			m.prev, m.cur = m.cur, msg.s
			m.rebuild()
		}
		if msg.final {
			m.ended = true
			return m, tea.Quit
		}
		return m, m.sample(m.opts.Interval, false)
	case endMsg:
		return m, m.sample(0, true)
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.rebuild()
		return m, nil
	case tea.KeyPressMsg:
		if m.filtering {
			return m.filterKey(msg)
		}
		return m.key(msg)
	}
	return m, nil
}

func (m Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch {
	case key.Matches(msg, keys.Quit):
		return m, tea.Quit
	case key.Matches(msg, keys.Help):
		m.showHelp = !m.showHelp
	case msg.String() == "esc" && m.showHelp:
		m.showHelp = false
	case key.Matches(msg, keys.Sort):
		m.settings.Sort = nextColumn(m.settings.Sort, 1)
	case key.Matches(msg, keys.SortBack):
		m.settings.Sort = nextColumn(m.settings.Sort, -1)
	case key.Matches(msg, keys.Filter):
		m.filtering = true
		m.input.SetValue(m.settings.Filter)
		m.input.CursorEnd()
		return m, m.input.Focus()
	case key.Matches(msg, keys.Pause):
		m.paused = !m.paused
	case key.Matches(msg, keys.Cumulative):
		m.settings.Cumulative = !m.settings.Cumulative
	case key.Matches(msg, keys.Group):
		m.group = (m.group + 1) % len(Groups)
	case msg.String() == "esc":
		m.settings.Filter = ""
	default:
		var cmd tea.Cmd
		m.table, cmd = m.table.Update(msg)
		return m, cmd
	}
	m.rebuild()
	return m, nil
}

// filterKey edits the filter; the rows follow every keystroke.
func (m Model) filterKey(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	switch msg.String() {
	case "enter":
		m.filtering = false
		m.input.Blur()
		return m, nil
	case "esc":
		m.filtering = false
		m.input.Blur()
		m.input.SetValue("")
	case "ctrl+c":
		return m, tea.Quit
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	m.settings.Filter = strings.TrimSpace(m.input.Value())
	m.rebuild()
	return m, cmd
}

// nextColumn is the column step places after name in table order.
func nextColumn(name string, step int) string {
	cols := tracer.SortColumns()
	for i, c := range cols {
		if c == name {
			return cols[(i+step+len(cols))%len(cols)]
		}
	}
	return tracer.DefaultSort
}

// rebuild makes the frame and the table from the samples and settings.
func (m *Model) rebuild() {
	// A process the user moved the cursor to stays under it as rows move.
	var follow uint32
	if c := m.table.Cursor(); c > 0 && c < len(m.frame.Rows) {
		follow = m.frame.Rows[c].Total.Pid
	}
	if !m.cur.Time.IsZero() {
		m.frame = Build(m.prev, m.cur, m.opts.Start, m.settings)
	} else {
		m.frame = Frame{Time: time.Now(), Settings: m.settings}
	}
	if m.width == 0 {
		return
	}
	cols := Layout(m.width, Groups[m.group], m.settings.Sort)
	tc := make([]table.Column, len(cols))
	for i, c := range cols {
		tc[i] = table.Column{Title: align(c, m.frame.Title(c), width(c)), Width: width(c)}
	}
	rows := make([]table.Row, len(m.frame.Rows))
	for i := range m.frame.Rows {
		r := make(table.Row, len(cols))
		for j, c := range cols {
			r[j] = align(c, m.frame.Cell(c, &m.frame.Rows[i], width(c)), width(c))
		}
		rows[i] = r
	}
	// Columns first: rows wider than the old columns are cut to them.
	m.table.SetRows(nil)
	m.table.SetColumns(tc)
	m.table.SetRows(rows)
	m.table.SetWidth(m.width)
	m.table.SetHeight(max(m.height-2, 2)) // the status line and the footer
	for i := range m.frame.Rows {
		if follow != 0 && m.frame.Rows[i].Total.Pid == follow {
			m.table.SetCursor(i)
		}
	}
	m.help.SetWidth(m.width)
	m.input.SetWidth(max(m.width-ansi.StringWidth(m.input.Prompt)-1, 1))
}

// align right-aligns numbers in their cells; comm stays left.
func align(c tracer.Column, s string, w int) string {
	if c.Text != nil {
		return s
	}
	if pad := w - ansi.StringWidth(s); pad > 0 {
		return strings.Repeat(" ", pad) + s
	}
	return s
}

// View draws the status line, the table (or the help) and the footer.
func (m Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "kstat trace"
	return v
}

func (m Model) render() string {
	if m.width == 0 {
		return ""
	}
	status := m.frame.Status()
	if m.cur.Time.IsZero() {
		status = "kstat trace: counting; the first rates come after " + m.opts.Interval.String()
	}
	if m.paused {
		status = "PAUSED  " + status
	}
	var b strings.Builder
	b.WriteString(ansi.Truncate(status, m.width, "…"))
	b.WriteByte('\n')
	if m.showHelp {
		lines := strings.Split(m.helpText(), "\n")
		b.WriteString(strings.Join(lines[:min(len(lines), max(m.height-1, 1))], "\n"))
		return b.String()
	}
	b.WriteString(m.table.View())
	b.WriteByte('\n')
	if m.filtering {
		b.WriteString(m.input.View())
	} else {
		b.WriteString(m.help.ShortHelpView(keys.ShortHelp()))
	}
	return b.String()
}

// helpText is the help screen: the keys, then what each column shows.
func (m Model) helpText() string {
	var b strings.Builder
	b.WriteString("h or esc: back to the table\n\n")
	b.WriteString(m.help.FullHelpView(keys.FullHelp()))
	b.WriteString("\n\nCounts are per second over the last interval (c: since the start);\n" +
		"OUT_BYTES, OUT_ALLOCS and MAX_WAIT_US are levels now. The filter keeps a\n" +
		"pid or the commands that contain the text; g shows one group of columns.\n\n")
	for _, c := range tracer.Columns() {
		b.WriteString(ansi.Truncate("  "+padRight(strings.ToUpper(c.Name), 12)+" "+padRight(c.Group, 8)+" "+c.Help, m.width, "…"))
		b.WriteByte('\n')
	}
	return b.String()
}

func padRight(s string, w int) string {
	return s + strings.Repeat(" ", max(w-len(s), 0))
}

// Frame is the frame shown last.
func (m Model) Frame() Frame { return m.frame }

// Ended reports whether the top stopped because its Duration passed.
func (m Model) Ended() bool { return m.ended }

// Err is the error that stopped the top, if any.
func (m Model) Err() error { return m.err }

// Size is the terminal's width and height, zero before they were known.
func (m Model) Size() (width, height int) { return m.width, m.height }
