package scenario

import (
	"math"
	"testing"
)

func TestScenariosFileIsValid(t *testing.T) {
	all, err := Load("../scenarios.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"status", "activation_storm", "mix", "writer_distinct", "writer_hot"} {
		if _, ok := all[want]; !ok {
			t.Errorf("scenario %s missing", want)
		}
	}
	mix := all["mix"]
	if math.Abs(mix.Mix[OpStatus]-0.99) > 1e-9 {
		t.Errorf("mix is %v%% status, the issue asks for 99%%", mix.Mix[OpStatus]*100)
	}
}

func TestPickFollowsWeights(t *testing.T) {
	s := Scenario{Mix: map[string]float64{"a": 3, "b": 1}}
	names, cum := s.Ops()
	if got := s.Pick(names, cum, 0.74); got != "a" {
		t.Errorf("0.74 picked %s", got)
	}
	if got := s.Pick(names, cum, 0.76); got != "b" {
		t.Errorf("0.76 picked %s", got)
	}
	if got := s.Pick(names, cum, 0.999999999); got != "b" {
		t.Errorf("last picked %s", got)
	}
}
