package statsfs

import (
	"fmt"
	"io/fs"
)

// Control is a file that is not a number: a knob (read its setting, write a
// new one) or a report (read-only text made fresh on each read).
type Control struct {
	Name string
	Help string
	// Read returns the current text; views print it as returned.
	Read func() string
	// Write validates and applies text (without its trailing newline). It
	// returns an error wrapping ErrInvalid for bad input and must leave
	// the old setting in place then. A nil Write makes the file read-only.
	Write func(text string) error
}

// Mode is 0644 for a writable control and 0444 for a read-only one.
func (c *Control) Mode() fs.FileMode {
	if c.Write == nil {
		return 0o444
	}
	return 0o644
}

// AddControl adds c to s. A second control of the same name gives ErrExist.
func (s *Source) AddControl(c *Control) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, x := range load(&s.controls) {
		if x.Name == c.Name {
			return fmt.Errorf("%w: control %q in source %q", ErrExist, c.Name, s.name)
		}
	}
	push(&s.controls, c)
	return nil
}

// Controls returns s's controls, oldest first.
func (s *Source) Controls() []*Control { return load(&s.controls) }

// Control returns the control called name, or nil.
func (s *Source) Control(name string) *Control {
	for _, c := range load(&s.controls) {
		if c.Name == name {
			return c
		}
	}
	return nil
}
