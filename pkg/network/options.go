package network

import "fmt"

// Init chooses how New draws a network's weights and biases.
type Init int

const (
	// InitNormal draws every weight and bias from N(0, 1), as network.py
	// does. It is the zero value.
	InitNormal Init = iota
	// InitScaled draws the weights into a neuron with n inputs from
	// N(0, 1/n) and the biases from N(0, 1), as network2.py's
	// default_weight_initializer does: a neuron's weighted input then has
	// a standard deviation near 1 instead of √n, so hidden neurons do not
	// start saturated.
	InitScaled
)

var initNames = [...]string{InitNormal: "normal", InitScaled: "scaled"}

// String returns "normal" or "scaled", the names ParseInit accepts.
func (i Init) String() string {
	if i.valid() {
		return initNames[i]
	}
	return fmt.Sprintf("Init(%d)", int(i))
}

func (i Init) valid() bool { return i >= 0 && int(i) < len(initNames) }

// ParseInit returns the Init named s ("normal" or "scaled").
func ParseInit(s string) (Init, error) {
	for i, name := range initNames {
		if s == name {
			return Init(i), nil
		}
	}
	return 0, fmt.Errorf("network: unknown initialisation %q, want normal or scaled", s)
}

// MarshalText returns i's name, so that an Init reads and writes as text
// (JSON, flags).
func (i Init) MarshalText() ([]byte, error) {
	if !i.valid() {
		return nil, fmt.Errorf("network: unknown initialisation %d", int(i))
	}
	return []byte(initNames[i]), nil
}

// UnmarshalText sets i to the Init named text, as ParseInit.
func (i *Init) UnmarshalText(text []byte) error {
	v, err := ParseInit(string(text))
	if err != nil {
		return err
	}
	*i = v
	return nil
}
