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

// Cost chooses the cost function SGD minimises. They differ only in the
// error of the output layer: δ = (a−y)⊙σ'(z) for Quadratic, δ = a−y for
// CrossEntropy, whose gradient does not vanish when an output neuron
// saturates on the wrong answer.
type Cost int

const (
	// Quadratic is network.py's cost, Σ ½‖a−y‖². It is the zero value.
	Quadratic Cost = iota
	// CrossEntropy is network2.py's CrossEntropyCost,
	// −Σ [y ln a + (1−y) ln(1−a)].
	CrossEntropy
)

var costNames = [...]string{Quadratic: "quadratic", CrossEntropy: "cross-entropy"}

// String returns "quadratic" or "cross-entropy", the names ParseCost
// accepts.
func (c Cost) String() string {
	if c.valid() {
		return costNames[c]
	}
	return fmt.Sprintf("Cost(%d)", int(c))
}

func (c Cost) valid() bool { return c >= 0 && int(c) < len(costNames) }

// ParseCost returns the Cost named s ("quadratic" or "cross-entropy").
func ParseCost(s string) (Cost, error) {
	for c, name := range costNames {
		if s == name {
			return Cost(c), nil
		}
	}
	return 0, fmt.Errorf("network: unknown cost %q, want quadratic or cross-entropy", s)
}

// MarshalText returns c's name, so that a Cost reads and writes as text.
func (c Cost) MarshalText() ([]byte, error) {
	if !c.valid() {
		return nil, fmt.Errorf("network: unknown cost %d", int(c))
	}
	return []byte(costNames[c]), nil
}

// UnmarshalText sets c to the Cost named text, as ParseCost.
func (c *Cost) UnmarshalText(text []byte) error {
	v, err := ParseCost(string(text))
	if err != nil {
		return err
	}
	*c = v
	return nil
}
