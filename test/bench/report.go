package main

import (
	"fmt"
	"strings"
	"time"
)

// report is everything docs/benchmarks.md says, gathered while the stages run and written once at the end: the
// sections in the order the stages added them, then one Targets table and one Must hold table for the whole run.
// Stages never write markdown themselves; they add a section, rows, targets and must-hold conditions, so a new
// measurement is one more file whose stage function appends to the same report.
type report struct {
	sections []*section
	targets  []targetRow
	musts    []mustRow
	// notMeasured lists what issue 7 asks for that no stage measures yet (rendered as the last section).
	notMeasured []string
}

// section is one "## title" part of the report: paragraphs, the exact commands that reproduce the figures (a sh
// block), and one table.
type section struct {
	title    string
	paras    []string
	commands []string
	columns  []string
	rows     [][]string
	notes    []string
}

// targetRow is a goal of issue 7: reported as met or NOT MET, never failing the run.
type targetRow struct {
	name, measured string
	met            bool
}

// mustRow is a condition the run depends on (output byte-identical, a command that must succeed, no process
// left behind); any that fails makes `make bench` exit non-zero.
type mustRow struct {
	condition string
	ok        bool
}

// section starts a new part of the report; the stage fills it in.
func (r *report) section(title string) *section {
	s := &section{title: title}
	r.sections = append(r.sections, s)
	return s
}

// target records a goal and whether the measurement meets it.
func (r *report) target(name, measured string, met bool) {
	r.targets = append(r.targets, targetRow{name: name, measured: measured, met: met})
}

// must records a must-hold condition; it returns ok so callers can chain on it.
func (r *report) must(ok bool, format string, args ...any) bool {
	r.musts = append(r.musts, mustRow{condition: fmt.Sprintf(format, args...), ok: ok})
	return ok
}

// failures counts the must-hold conditions that failed.
func (r *report) failures() int {
	n := 0
	for _, m := range r.musts {
		if !m.ok {
			n++
		}
	}
	return n
}

// para adds a paragraph (markdown).
func (s *section) para(format string, args ...any) {
	s.paras = append(s.paras, fmt.Sprintf(format, args...))
}

// command adds one line to the section's sh block: what to run to reproduce the figures.
func (s *section) command(format string, args ...any) {
	s.commands = append(s.commands, fmt.Sprintf(format, args...))
}

// table sets the column headers of the section's table.
func (s *section) table(columns ...string) { s.columns = columns }

// row adds one row to the section's table.
func (s *section) row(cells ...string) { s.rows = append(s.rows, cells) }

// note adds a paragraph after the table.
func (s *section) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// markdown renders the report under the given header paragraph.
func (r *report) markdown(header string) string {
	var b strings.Builder
	b.WriteString("# Benchmarks\n\n" + header + "\n")
	for _, s := range r.sections {
		fmt.Fprintf(&b, "\n## %s\n\n", s.title)
		for _, p := range s.paras {
			b.WriteString(p + "\n\n")
		}
		if len(s.commands) > 0 {
			b.WriteString("```sh\n" + strings.Join(s.commands, "\n") + "\n```\n\n")
		}
		if len(s.columns) > 0 {
			writeTable(&b, s.columns, s.rows)
		}
		for _, n := range s.notes {
			b.WriteString("\n" + n + "\n")
		}
	}
	b.WriteString("\n## Targets\n\n")
	rows := make([][]string, 0, len(r.targets))
	for _, t := range r.targets {
		mark := "met"
		if !t.met {
			mark = "NOT MET"
		}
		rows = append(rows, []string{t.name, t.measured, mark})
	}
	writeTable(&b, []string{"target", "measured", ""}, rows)
	b.WriteString("\n## Must hold\n\n")
	rows = rows[:0]
	for _, m := range r.musts {
		mark := "holds"
		if !m.ok {
			mark = "FAILS"
		}
		rows = append(rows, []string{m.condition, mark})
	}
	writeTable(&b, []string{"condition", ""}, rows)
	if len(r.notMeasured) > 0 {
		b.WriteString("\n## Not measured yet (issue 7)\n\n")
		for _, n := range r.notMeasured {
			b.WriteString("- " + n + "\n")
		}
	}
	return b.String()
}

func writeTable(b *strings.Builder, columns []string, rows [][]string) {
	b.WriteString("| " + strings.Join(columns, " | ") + " |\n|")
	for range columns {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, r := range rows {
		cells := make([]string, len(r))
		for i, c := range r {
			cells[i] = cell(c)
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
}

// cell makes text safe inside a markdown table cell (an error message may hold pipes and newlines).
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}

// dur formats a duration for the tables: 10 µs resolution below a second, 1 ms above.
func dur(d time.Duration) string {
	if d >= time.Second {
		return d.Round(time.Millisecond).String()
	}
	return d.Round(10 * time.Microsecond).String()
}

// ratio formats a/b as "1.23×" (with more digits below 0.1, so that a small ratio never shows as 0.00×).
func ratio(a, b time.Duration) string {
	q := float64(a) / float64(b)
	switch {
	case q < 0.01:
		return fmt.Sprintf("%.4f×", q)
	case q < 0.1:
		return fmt.Sprintf("%.3f×", q)
	}
	return fmt.Sprintf("%.2f×", q)
}

// mb formats bytes as megabytes.
func mb(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
