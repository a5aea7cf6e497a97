// Package submatch finds the capture groups of a regular expression's
// leftmost-first match, the positions regexp's FindSubmatchIndex returns,
// into memory the caller keeps (a Scratch), so filling a rewrite template
// from a regex route's groups allocates nothing per request.
//
// Why not regexp itself: every exported regexp method that reports
// positions (FindIndex, FindSubmatchIndex, FindReaderSubmatchIndex, the
// String and All forms) has its engine append the positions to a nil
// slice (regexp's internal doExecute with dstCap nil) and returns that
// slice, so it is allocated on the heap each call; the methods that pass
// a stack array instead (Find, FindSubmatch, ReplaceAll) size it for the
// whole match only, or allocate their own result. Go 1.26's regexp has no
// method that takes the caller's []int.
//
// How: the same bit-state backtracker regexp runs for small programs and
// inputs, over the program regexp/syntax compiles from the same
// expression (same parse flags, syntax.Perl, same simplification, same
// group numbers). It explores alternatives in priority order and stops at
// the first match, which is leftmost-first (Perl) semantics, regexp's
// default (Longest is not supported). A bitmap of visited (instruction,
// position) pairs makes it linear in len(program) x len(input).
//
// Invariants: Find's answer equals regexp's FindSubmatchIndex (FuzzFind
// compares them on random expressions and inputs); Find never allocates
// once its Scratch has grown to the input sizes it meets; the bitmap is
// bounded (MaxStates bits): a longer input, or a program of more than
// maxInsts instructions, is refused (ok false) so the caller falls back to
// regexp, keeping the linear time bound.
//
// submatch imports only the standard library.
package submatch
