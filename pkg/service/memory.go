package service

// admitLocked puts e in memory, first unloading the least recently used
// idle networks while the networks in memory would hold more than
// MaxParamsInMemory parameters. An idle network has no job running here
// and is saved as it stands, so unloading loses nothing: it is listed as
// "saved" and loads again on its next use. If every network is busy the
// limit is exceeded rather than a request refused.
func (s *Service) admitLocked(e *entry) {
	total := e.params
	for _, o := range s.nets {
		total += o.params
	}
	for total > s.limits.MaxParamsInMemory {
		victim := s.idlestLocked()
		if victim == nil {
			break
		}
		delete(s.nets, victim.id)
		victim.cancel(errUnloaded)
		total -= victim.params
		s.log.Info("network unloaded from memory", "network_id", victim.id, "params", victim.params)
	}
	s.nets[e.id] = e
}

// idlestLocked returns the least recently used network that may be
// unloaded, or nil.
func (s *Service) idlestLocked() *entry {
	var victim *entry
	for id, e := range s.nets {
		if s.busy[id] > 0 || e.unsaved.Load() {
			continue
		}
		if victim == nil || e.lastUsed.Load() < victim.lastUsed.Load() {
			victim = e
		}
	}
	return victim
}

// ParamsInMemory is the weights and biases of the networks held in memory
// here (what MaxParamsInMemory bounds), for sizing the garbage collector's
// memory limit.
func (s *Service) ParamsInMemory() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.nets {
		n += e.params
	}
	return n
}
