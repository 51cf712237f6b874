// Command report turns the output of the comparative benchmarks into
// RESULTS.md: medians per contender, overheads over bare, and ratios to
// gobreaker-per-host, with the benchstat table appended verbatim.
//
//	go run ./report results.txt benchstat.txt > RESULTS.md
package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

// samples maps "Benchmark/contender" and a unit to the values of each run.
type samples map[string]map[string][]float64

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: report results.txt benchstat.txt")
		os.Exit(2)
	}
	s, cpu, err := parse(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	table, err := os.ReadFile(os.Args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	write(s, cpu, string(table))
}

func parse(path string) (samples, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	s, cpu := samples{}, ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if c, ok := strings.CutPrefix(line, "cpu: "); ok {
			cpu = c
		}
		fields := strings.Fields(line)
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		name := fields[0]
		if i := strings.LastIndexByte(name, '-'); i > 0 {
			name = name[:i] // the GOMAXPROCS suffix
		}
		name = strings.TrimPrefix(name, "Benchmark")
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				continue
			}
			if s[name] == nil {
				s[name] = map[string][]float64{}
			}
			s[name][fields[i+1]] = append(s[name][fields[i+1]], v)
		}
	}
	return s, cpu, sc.Err()
}

// med returns the median of one benchmark's unit, or NaN-like -1 if absent.
func (s samples) med(name, unit string) float64 {
	v := slices.Clone(s[name][unit])
	if len(v) == 0 {
		return -1
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

var callPeers = []string{"httpbreaker-do", "httpbreaker-allow", "gobreaker-execute", "failsafe-get"}

var peers = []string{"httpbreaker", "httpbreaker-window", "httpbreaker-throttle", "httpbreaker-maxconcurrent", "httpbreaker-adaptive", "httpbreaker-budget",
	"floor", "gobreaker", "failsafe", "resty", "hystrix"}

func write(s samples, cpu, table string) {
	p := func(format string, a ...any) { fmt.Printf(format, a...) }
	goVersion, _ := exec.Command("go", "version").Output()
	p("# Benchmark results\n\n")
	p("Made by `make bench` on %s with %s on %s (2 cores). Medians of %d runs; overhead = contender − bare, ",
		time.Now().UTC().Format("2006-01-02"), strings.TrimSpace(string(goVersion)), cpu, len(s["ClosedSerial/bare"]["ns/op"]))
	p("measured in the same run. Every contender trips after 5 consecutive failures, and only a 200 succeeds. ")
	p("Two contenders cannot be configured to that rule exactly, and say so here: resty v3's breaker guards a whole client, not each host, ")
	p("and is measured against a resty client without one (`resty-client`); hystrix-go trips on an error percentage over a rolling window, ")
	p("so it is set to 100%% of at least 5 requests, and its memory is measured over 1k hosts (its commands cost too much for 100k).\n\n")

	p("## Closed path\n\n| contender | serial ns/op | overhead | ÷ gobreaker's | parallel, 1000 hosts ns/op | overhead | ÷ gobreaker's | allocs/op |\n|---|---|---|---|---|---|---|---|\n")
	over := func(bench, who string) float64 {
		base := "bare"
		if who == "resty" {
			base = "resty-client"
		}
		return s.med(bench+"/"+who, "ns/op") - s.med(bench+"/"+base, "ns/op")
	}
	// rows prints, for each of who, its serial and parallel figures and
	// their overheads as shares of ref's.
	rows := func(serial, parallel, ref string, who []string) {
		for _, who := range who {
			so, po := over(serial, who), over(parallel, who)
			p("| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.0f |\n", who,
				s.med(serial+"/"+who, "ns/op"), so, so/over(serial, ref),
				s.med(parallel+"/"+who, "ns/op"), po, po/over(parallel, ref),
				s.med(serial+"/"+who, "allocs/op"))
		}
	}
	rows("ClosedSerial", "ClosedParallel1000Hosts", "gobreaker", peers)
	p("\nBare: %.1f ns/op serial, %.1f ns/op parallel.\n\n", s.med("ClosedSerial/bare", "ns/op"), s.med("ClosedParallel1000Hosts/bare", "ns/op"))

	p("## Open refusal, calls until open, memory per host, loopback\n\n| contender | refusal ns/op | refusal allocs/op | upstream calls until open | bytes per tracked host | loopback throughput ÷ bare |\n|---|---|---|---|---|---|\n")
	for _, who := range peers {
		p("| %s | %s | %s | %s | %s | %s |\n", who,
			num(s.med("OpenRefusal/"+who, "ns/op"), 1), num(s.med("OpenRefusal/"+who, "allocs/op"), 0),
			num(s.med("CallsUntilOpen/"+who, "upstream-calls"), 1), num(s.med("MemoryPerHost/"+who, "B/host"), 0),
			num(s.med("Loopback", who+"/bare"), 3))
	}

	p("\n## Calls that are not HTTP\n\nOne backend under one breaker, a call that succeeds at once: `Transport.Do` and `Allow`/done beside gobreaker's `Execute` and failsafe-go's `Get`; overhead = contender − the bare call.\n\n")
	p("| contender | serial ns/op | overhead | ÷ gobreaker's | parallel, one key ns/op | overhead | ÷ gobreaker's | allocs/op |\n|---|---|---|---|---|---|---|---|\n")
	rows("CallSerial", "CallParallel", "gobreaker-execute", callPeers)
	p("\nBare call: %.1f ns/op serial, %.1f ns/op parallel.\n", s.med("CallSerial/bare", "ns/op"), s.med("CallParallel/bare", "ns/op"))

	hb, gb, fl := "httpbreaker", "gobreaker", "floor"
	p("\n## What it shows\n\n")
	p("- Closed path: httpbreaker's overhead is %.2f× gobreaker-per-host's serially and %.2f× in parallel over 1000 hosts (goals ≤ 0.25 and ≤ 0.33), and %.2f× / %.2f× the floor's (goal ≤ 1.5), with %.0f allocs/op. Under `Window` (the rate rule): %.2f× / %.2f× the floor's.\n",
		over("ClosedSerial", hb)/over("ClosedSerial", gb), over("ClosedParallel1000Hosts", hb)/over("ClosedParallel1000Hosts", gb),
		over("ClosedSerial", hb)/over("ClosedSerial", fl), over("ClosedParallel1000Hosts", hb)/over("ClosedParallel1000Hosts", fl),
		s.med("ClosedSerial/"+hb, "allocs/op"),
		over("ClosedSerial", hb+"-window")/over("ClosedSerial", fl), over("ClosedParallel1000Hosts", hb+"-window")/over("ClosedParallel1000Hosts", fl))
	p("- Open refusal: %.1f ns/op against gobreaker's %.1f (%.2f×), %.0f allocs/op.\n",
		s.med("OpenRefusal/"+hb, "ns/op"), s.med("OpenRefusal/"+gb, "ns/op"),
		s.med("OpenRefusal/"+hb, "ns/op")/s.med("OpenRefusal/"+gb, "ns/op"), s.med("OpenRefusal/"+hb, "allocs/op"))
	p("- Memory: %.0f bytes per tracked host, %.2f× gobreaker-per-host's (goal ≤ 0.5).\n",
		s.med("MemoryPerHost/"+hb, "B/host"), s.med("MemoryPerHost/"+hb, "B/host")/s.med("MemoryPerHost/"+gb, "B/host"))
	p("- Loopback end to end: httpbreaker delivers %.3f of bare's throughput (goal ≥ 0.99); at this scale the network stack dominates every contender but hystrix and resty, whose per-call goroutines and client machinery show.\n",
		s.med("Loopback", hb+"/bare"))
	win, thr := "httpbreaker-window", "httpbreaker-throttle"
	p("- Overload protection: with `Throttle` on (and its `Window`), the closed path costs %.1f ns/op of overhead against the rate window's %.1f alone (%.2f×, goal ≤ 2) and the default policy's %.1f, serially; %.1f against %.1f (%.2f×) in parallel over 1000 hosts; %.0f allocs/op. A healthy host costs the throttle two atomic loads per call, no clock read.\n",
		over("ClosedSerial", thr), over("ClosedSerial", win), over("ClosedSerial", thr)/over("ClosedSerial", win), over("ClosedSerial", hb),
		over("ClosedParallel1000Hosts", thr), over("ClosedParallel1000Hosts", win), over("ClosedParallel1000Hosts", thr)/over("ClosedParallel1000Hosts", win),
		s.med("ClosedSerial/"+thr, "allocs/op"))
	capped, adaptive, budget := "httpbreaker-maxconcurrent", "httpbreaker-adaptive", "httpbreaker-budget"
	p("- Concurrency caps (no body, so each call frees its slot at once): the static cap costs %.1f ns/op of overhead serially, the adaptive limit %.1f (%.2f× the static cap's, goal ≤ 2; the rate window's is %.1f); in parallel over 1000 hosts %.1f and %.1f; %.0f allocs/op.\n",
		over("ClosedSerial", capped), over("ClosedSerial", adaptive), over("ClosedSerial", adaptive)/over("ClosedSerial", capped), over("ClosedSerial", win),
		over("ClosedParallel1000Hosts", capped), over("ClosedParallel1000Hosts", adaptive), s.med("ClosedSerial/"+adaptive, "allocs/op"))
	p("- Retry budget: a call under `Window` + `RetryBudget` costs %.1f ns/op of overhead against the rate window's %.1f (%.2f×, goal ≤ 1.2): the budget reads the window the calls already fill.\n",
		over("ClosedSerial", budget), over("ClosedSerial", win), over("ClosedSerial", budget)/over("ClosedSerial", win))
	p("- Calls that are not HTTP: `Do` costs %.1f ns/op over the bare call serially — the closed HTTP path's overhead is %.1f, and a closure call %.1f — %.2f× gobreaker's `Execute`, with %.0f allocs/op; in parallel on one key %.1f (%.2f× gobreaker's). `Allow` allocates its done (%.0f allocs/op).\n",
		over("CallSerial", "httpbreaker-do"), over("ClosedSerial", hb), s.med("CallSerial/bare", "ns/op"),
		over("CallSerial", "httpbreaker-do")/over("CallSerial", "gobreaker-execute"), s.med("CallSerial/httpbreaker-do", "allocs/op"),
		over("CallParallel", "httpbreaker-do"), over("CallParallel", "httpbreaker-do")/over("CallParallel", "gobreaker-execute"),
		s.med("CallSerial/httpbreaker-allow", "allocs/op"))
	p("- Calls until open (a failing host, a fresh breaker): ")
	for i, who := range []string{hb, gb, "failsafe", "resty", "hystrix"} {
		if i > 0 {
			p(", ")
		}
		p("%s %.1f", who, s.med("CallsUntilOpen/"+who, "upstream-calls"))
	}
	p(". hystrix counts asynchronously, so the benchmark pauses 1 ms between its calls to let its counts land.\n")

	p("\n## benchstat\n\n```\n%s```\n", table)
}

func num(v float64, prec int) string {
	if v < 0 {
		return "—"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}
