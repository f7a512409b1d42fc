package service

import (
	"github.com/mnist-go/nnserver/pkg/model"
)

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
		victim.release()
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

// heldBytes is what a network in memory holds of the budget: its weights
// and biases (8 bytes each) and its history (historyRecordHeld bytes a
// record; a record added by training after it was loaded is not counted
// until it is loaded again: 192 bytes an epoch).
func heldBytes(a model.Arch, records int) int64 {
	return 8*int64(a.ParamCount()) + historyRecordHeld*int64(records)
}

// historyRecordHeld is what one history record in memory takes: the
// record (about 150 bytes) and its strings (measured: 156 bytes a record).
const historyRecordHeld = 192

// reclaimNetworks unloads idle networks, least recently used first, until
// about need bytes of the budget are given back: networks kept in memory
// for their next use give way to work that needs the memory now (they stay
// saved, and load again on their next use). The budget calls it.
func (s *Service) reclaimNetworks(need int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for freed := int64(0); freed < need; {
		victim := s.idlestLocked()
		if victim == nil {
			return
		}
		delete(s.nets, victim.id)
		victim.cancel(errUnloaded)
		victim.release()
		freed += heldBytes(victim.arch(), len(victim.state.Load().history))
		s.log.Info("network unloaded from memory: the budget needed room", "network_id", victim.id, "params", victim.params)
	}
}
