package submatch

import (
	"fmt"
	"regexp/syntax"
	"unicode/utf8"
)

const (
	// MaxStates bounds the visited bitmap: len(program) x (len(input)+1)
	// bits, 32 KiB, as regexp's own backtracker (maxBacktrackVector).
	MaxStates = 256 << 10
	// maxInsts: larger programs are left to regexp (maxBacktrackProg).
	maxInsts = 500
	// keepWords, keepJobs: what a Scratch keeps between uses (Trim).
	keepWords = 1 << 10
	keepJobs  = 1 << 10
)

// Prog is a compiled expression. Safe for concurrent use.
type Prog struct {
	prog     *syntax.Prog
	ncap     int  // 2 x (groups + 1)
	anchored bool // matches only at the start of the input
}

// Compile compiles expr as regexp.Compile does.
func Compile(expr string) (*Prog, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("submatch: %w", err)
	}
	ncap := 2 * (re.MaxCap() + 1)
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, fmt.Errorf("submatch: %w", err)
	}
	return &Prog{prog: prog, ncap: ncap, anchored: prog.StartCond()&syntax.EmptyBeginText != 0}, nil
}

// Scratch is one caller's working memory: the visited bitmap, the
// backtracking stack and the positions. Its zero value is ready; it
// grows to the largest input met and keeps that (Trim bounds it). Not for
// concurrent use.
type Scratch struct {
	visited []uint32
	jobs    []job
	cap     []int
	match   []int
}

// job is a state to come back to: instruction pc at input position pos;
// arg marks the second visit (an alternation's other branch, or a
// capture register to restore to pos).
type job struct {
	pc  uint32
	arg bool
	pos int
}

// Trim drops buffers a long input grew beyond what is worth keeping: a
// kept Scratch holds at most 4 KiB of bitmap (a 21-instruction program
// over a 1,500-byte input) and 1,024 jobs (24 KiB).
func (s *Scratch) Trim() {
	if cap(s.visited) > keepWords {
		s.visited = nil
	}
	if cap(s.jobs) > keepJobs {
		s.jobs = nil
	}
}

// Find returns the leftmost-first match of p in b as regexp's
// FindSubmatchIndex does: pairs of positions, the whole match first,
// then each group, -1 for a group that took no part. nil: no match. The
// slice is s's, valid until s is used again. ok is false when the input is
// too long for the bounded bitmap (or the program too large, or p nil):
// then nothing was decided, and the caller asks regexp.
func (p *Prog) Find(s *Scratch, b []byte) (m []int, ok bool) {
	if p == nil {
		return nil, false // not compiled: the caller's regexp decides
	}
	n := len(p.prog.Inst) * (len(b) + 1)
	if len(p.prog.Inst) > maxInsts || n > MaxStates {
		return nil, false
	}
	words := (n + 31) / 32
	if cap(s.visited) < words {
		s.visited = make([]uint32, words, max(words, 64))
	}
	s.visited = s.visited[:words]
	clear(s.visited)
	if cap(s.cap) < p.ncap {
		s.cap, s.match = make([]int, p.ncap), make([]int, p.ncap)
	}
	s.cap, s.match = s.cap[:p.ncap], s.match[:p.ncap]
	for i := range s.cap {
		s.cap[i], s.match[i] = -1, -1
	}
	start := uint32(p.prog.Start)
	if p.anchored {
		s.cap[0] = 0
		if !p.try(s, b, start, 0) {
			return nil, true
		}
		return s.match, true
	}
	// Each start position in turn; the bitmap is not cleared between
	// them, so no state is explored twice and the whole stays linear (a
	// state that failed from an earlier start fails again).
	for pos := 0; pos <= len(b); {
		s.cap[0] = pos
		if p.try(s, b, start, pos) {
			return s.match, true
		}
		if pos == len(b) {
			break
		}
		_, w := utf8.DecodeRune(b[pos:])
		pos += w
	}
	return nil, true
}

// visit marks (pc, pos) visited and reports whether it was new.
func (p *Prog) visit(s *Scratch, b []byte, pc uint32, pos int) bool {
	n := uint(int(pc)*(len(b)+1) + pos)
	w, bit := n/32, uint32(1)<<(n&31)
	if s.visited[w]&bit != 0 {
		return false
	}
	s.visited[w] |= bit
	return true
}

func (p *Prog) push(s *Scratch, b []byte, pc uint32, pos int, arg bool) {
	if p.prog.Inst[pc].Op != syntax.InstFail && (arg || p.visit(s, b, pc, pos)) {
		s.jobs = append(s.jobs, job{pc: pc, arg: arg, pos: pos})
	}
}

// step is the rune at pos and its width; -1 and 0 at the end.
func step(b []byte, pos int) (rune, int) {
	if pos >= len(b) {
		return -1, 0
	}
	if c := b[pos]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRune(b[pos:])
}

// context is the empty-width assertions that hold at pos.
func context(b []byte, pos int) syntax.EmptyOp {
	r1, r2 := rune(-1), rune(-1)
	if pos > 0 && pos <= len(b) {
		r1, _ = utf8.DecodeLastRune(b[:pos])
	}
	if pos < len(b) {
		r2, _ = utf8.DecodeRune(b[pos:])
	}
	return syntax.EmptyOpContext(r1, r2)
}

// try runs the backtracker from instruction pc at pos: true when it
// reaches a match, whose positions are then in s.match.
func (p *Prog) try(s *Scratch, b []byte, pc uint32, pos int) bool {
	s.jobs = s.jobs[:0]
	p.push(s, b, pc, pos, false)
	for len(s.jobs) > 0 {
		j := s.jobs[len(s.jobs)-1]
		s.jobs = s.jobs[:len(s.jobs)-1]
		pc, pos, arg := j.pc, j.pos, j.arg
		// The popped state was marked when pushed: run it without
		// checking; each state it leads to is checked (next).
		for first := true; ; first = false {
			if !first && !p.visit(s, b, pc, pos) {
				break
			}
			inst := &p.prog.Inst[pc]
			next := true
			switch inst.Op {
			case syntax.InstFail:
				next = false
			case syntax.InstAlt:
				if arg {
					arg, pc = false, inst.Arg
				} else {
					p.push(s, b, pc, pos, true)
					pc = inst.Out
				}
			case syntax.InstAltMatch:
				// One branch consumes runes, the other leads to a match:
				// leftmost-first takes the match side as regexp does.
				switch p.prog.Inst[inst.Out].Op {
				case syntax.InstRune, syntax.InstRune1, syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
					p.push(s, b, inst.Arg, pos, false)
					pc, pos = inst.Arg, len(b)
				default:
					p.push(s, b, inst.Out, len(b), false)
					pc = inst.Out
				}
			case syntax.InstRune:
				r, w := step(b, pos)
				if r < 0 || !inst.MatchRune(r) {
					next = false
				} else {
					pos, pc = pos+w, inst.Out
				}
			case syntax.InstRune1:
				r, w := step(b, pos)
				if r != inst.Rune[0] {
					next = false
				} else {
					pos, pc = pos+w, inst.Out
				}
			case syntax.InstRuneAnyNotNL:
				r, w := step(b, pos)
				if r == '\n' || r < 0 {
					next = false
				} else {
					pos, pc = pos+w, inst.Out
				}
			case syntax.InstRuneAny:
				r, w := step(b, pos)
				if r < 0 {
					next = false
				} else {
					pos, pc = pos+w, inst.Out
				}
			case syntax.InstCapture:
				if arg {
					// Backtracked past it: restore the register.
					s.cap[inst.Arg] = pos
					next = false
				} else {
					if int(inst.Arg) < len(s.cap) {
						p.push(s, b, pc, s.cap[inst.Arg], true)
						s.cap[inst.Arg] = pos
					}
					pc = inst.Out
				}
			case syntax.InstEmptyWidth:
				if syntax.EmptyOp(inst.Arg)&^context(b, pos) != 0 {
					next = false
				} else {
					pc = inst.Out
				}
			case syntax.InstNop:
				pc = inst.Out
			case syntax.InstMatch:
				s.cap[1] = pos
				copy(s.match, s.cap)
				return true
			}
			if !next {
				break
			}
		}
	}
	return false
}
