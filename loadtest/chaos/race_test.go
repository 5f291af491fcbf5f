//go:build race

package chaos

// raceEnabled: go test -race builds the topology's writers and edges with the race
// detector too.
const raceEnabled = true
