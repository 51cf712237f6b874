package statuspage

import (
	"html/template"
	"strconv"
)

// pageTemplate is the whole page: no external assets, so it works offline
// and under a strict Content-Security-Policy.
var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"seconds": func(f *float64) string {
		if f == nil {
			return ""
		}
		return formatSeconds(*f)
	},
	"percent": func(f float64) string { return strconv.FormatFloat(100*f, 'f', 0, 64) + "%" },
}).Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>httpbreaker: circuits</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { margin: 0 0 .3em; }
p.summary { margin: 0 0 1em; color: #444; }
p.summary b { color: #222; }
table { border-collapse: collapse; }
th, td { padding: .35em .6em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
th { font-size: 12px; font-weight: 600; color: #555; }
td.host { overflow-wrap: anywhere; min-width: 10em; }
td.load { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; border-radius: 3px; padding: .1em .5em; color: #fff; white-space: nowrap; }
.closed { background: #2e7d32; }
.open { background: #c62828; }
.half-open { background: #ef6c00; }
.shedding { background: #f9a825; color: #222; }
form { display: inline; }
td.controls { white-space: nowrap; }
button { font: inherit; padding: .15em .6em; }
@media (max-width: 760px) {
  body { margin: .8em; }
  table, tbody, tr, td { display: block; }
  thead { display: none; }
  tr { border: 1px solid #ddd; border-radius: 4px; margin: 0 0 .8em; padding: .3em 0; }
  td { border: 0; padding: .15em .6em; text-align: left; }
  td.num { text-align: left; }
  td.host { font-weight: 600; }
  td.num::before { color: #666; }
  td.run::before { content: "Failures in a row: "; }
  td.requests::before { content: "Requests: "; }
  td.successes::before { content: "Successes: "; }
  td.failures::before { content: "Failures: "; }
  td.ignored::before { content: "Ignored: "; }
  td.rejected::before { content: "Rejected: "; }
  td.shed::before { content: "Shed: "; }
  td.retries::before { content: "Retries (denied): "; }
  td.hedges::before { content: "Hedges (won): "; }
  td.load:empty, td.retry:empty { display: none; }
  td.load::before { content: "Load: "; }
  td.retry::before { content: "Retry in: "; }
  td.controls { padding-top: .4em; }
}
</style>
</head>
<body>
<h1>Circuits</h1>
{{with .Summary}}<p class="summary"><b>{{.Tracked}}</b> {{if eq .Tracked 1}}host{{else}}hosts{{end}} tracked · <b>{{.Open}}</b> open · <b>{{.HalfOpen}}</b> half-open · <b>{{.Shedding}}</b> shedding · <b>{{.Isolated}}</b> isolated</p>{{end}}
{{if not .Hosts}}<p>No host tracked yet.</p>{{else}}
<table>
<thead><tr><th>Host</th><th>State</th><th>Failures in a row</th><th>Requests</th><th>Successes</th><th>Failures</th><th>Ignored</th><th>Rejected</th><th>Shed</th><th>Retries (denied)</th><th>Hedges (won)</th><th>Load</th><th>Retry in</th>{{if .Controls}}<th></th>{{end}}</tr></thead>
<tbody>
{{range .Hosts}}<tr data-host="{{.Host}}">
<td class="host">{{.Host}}</td>
<td><span class="state {{if .Shedding}}shedding{{else}}{{.State}}{{end}}">{{.State}}{{if .Isolated}} (isolated){{end}}{{if .Shedding}}, shedding load{{end}}</span></td>
<td class="num run">{{if eq .State.String "closed"}}{{.ConsecutiveFailures}}{{else}}&mdash;{{end}}</td>
<td class="num requests">{{.Total.Requests}}</td>
<td class="num successes">{{.Total.Successes}}</td>
<td class="num failures">{{.Total.Failures}}</td>
<td class="num ignored">{{.Total.Ignored}}</td>
<td class="num rejected">{{.Total.Rejected}}</td>
<td class="num shed">{{.Total.Shed}}</td>
<td class="num retries">{{.Total.Retries}}{{if .Total.RetriesDenied}} ({{.Total.RetriesDenied}}){{end}}</td>
<td class="num hedges">{{.Total.Hedges}}{{if .Total.HedgeWins}} ({{.Total.HedgeWins}}){{end}}</td>
<td class="num load">{{if .Throttle}}{{percent .Throttle}} throttled{{end}}{{if and .Throttle .InFlight}}, {{end}}{{if .InFlight}}{{.InFlight}} in flight{{end}}{{if .Limit}}{{if or .Throttle .InFlight}}, {{end}}limit {{.Limit}}{{end}}</td>
<td class="num retry">{{seconds .RetryInSeconds}}</td>
{{if $.Controls}}<td class="controls">
{{if not .Isolated}}<form method="post"><input type="hidden" name="host" value="{{.Host}}"><input type="hidden" name="action" value="isolate"><button class="isolate" type="submit">Isolate</button></form>{{end}}
<form method="post"><input type="hidden" name="host" value="{{.Host}}"><input type="hidden" name="action" value="clear"><button class="clear" type="submit">Clear</button></form>
</td>{{end}}
</tr>
{{end}}</tbody>
</table>{{end}}
</body>
</html>
`))
