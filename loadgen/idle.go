package loadgen

// done returns a session to the scheduler with the time it is ready again.
type done struct {
	session int32
	ready   int64
}

// idleHeap orders idle sessions by when their think time ends. It is a typed binary
// heap: container/heap would box every element on the per-operation path.
type idleHeap []done

func (h *idleHeap) push(d done) {
	*h = append(*h, d)
	a := *h
	i := len(a) - 1
	for i > 0 {
		p := (i - 1) / 2
		if a[p].ready <= a[i].ready {
			break
		}
		a[p], a[i] = a[i], a[p]
		i = p
	}
}

// init establishes the heap order over all elements (Floyd's bottom-up heapify).
func (h *idleHeap) init() {
	a := *h
	for i := len(a)/2 - 1; i >= 0; i-- {
		a.down(i)
	}
}

func (h *idleHeap) pop() done {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	a.down(0)
	*h = a
	return top
}

// down sifts element i towards the leaves until the heap order holds below it.
func (a idleHeap) down(i int) {
	n := len(a)
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && a[r].ready < a[l].ready {
			m = r
		}
		if a[i].ready <= a[m].ready {
			break
		}
		a[i], a[m] = a[m], a[i]
		i = m
	}
}
