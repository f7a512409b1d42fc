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

// HeldInMemory is about the bytes the networks held in memory here take:
// their weights and biases (what MaxParamsInMemory bounds, 8 bytes each)
// and their histories (historyRecordHeld bytes a record), for sizing the
// garbage collector's memory limit.
func (s *Service) HeldInMemory() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := int64(0)
	for _, e := range s.nets {
		n += 8*int64(e.params) + historyRecordHeld*int64(len(e.state.Load().history))
	}
	return n
}

// historyRecordHeld is what one history record in memory takes: the
// record (about 150 bytes) and its strings (measured: 156 bytes a record).
const historyRecordHeld = 192
