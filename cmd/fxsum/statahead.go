package main

// Statting on two goroutines. On an unchanged rerun the walker's time is
// mostly one fstatat a file, and the walker is what the run waits for: the
// row reader, on the other core, needs less. So in a folder whose files
// the visitor compares with what it knows, a goroutine of its own stats the
// second half of the listing's files while the walker stats and visits the
// first half; the walker then takes the results it finds ready. A result
// is the state of the file after the listing and before it is visited, as
// the walker's own would be; a file that changes later is caught when it
// is hashed, as always.

// statSplitMin is the fewest files of a folder that are statted on two
// goroutines: below it, starting the goroutine costs more than it saves.
const statSplitMin = 64

// statesVisitor is a visitor that can tell, for the directory last
// entered, whether it will ask for the state of most of its files.
type statesVisitor interface {
	wantsStates() bool
}

// statResult is the outcome of lstatAt.
type statResult struct {
	st      fileState
	regular bool
	err     error
}

// statAhead is the statting of list[from:], a directory's sorted listing,
// on a goroutine of its own: every regular file of it (excluded files and
// the database's too: checking costs about what the stat does).
type statAhead struct {
	from    int
	results []statResult // of list[from:]; complete once done is closed
	stop    chan struct{}
	done    chan struct{}
}

// startStatAhead starts statting the regular files of list[from:] in the
// directory open as fd.
func startStatAhead(fd uintptr, dir string, list []dirent, from int) *statAhead {
	a := &statAhead{from: from, results: make([]statResult, len(list)-from), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(a.done)
		var scratch []byte
		for i, e := range list[from:] {
			if i%256 == 0 {
				select {
				case <-a.stop:
					return
				default:
				}
			}
			if e.typ.IsRegular() && e.early == nil {
				r := &a.results[i]
				r.st, r.regular, r.err = lstatAt(fd, dir, e.name, &scratch)
			}
		}
	}()
	return a
}

// result returns the stat of list[i], if a is statting it: it waits for a
// to be done.
func (a *statAhead) result(i int) (statResult, bool) {
	if a == nil || i < a.from {
		return statResult{}, false
	}
	<-a.done
	return a.results[i-a.from], true
}

// close stops a and waits for it: the directory's descriptor may be closed
// after. A nil *statAhead is closed.
func (a *statAhead) close() {
	if a == nil {
		return
	}
	close(a.stop)
	<-a.done
}
