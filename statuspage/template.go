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
{{if .Refresh}}<meta http-equiv="refresh" content="{{.Refresh}}">{{end}}
<title>httpbreaker: circuits</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: .35em .8em; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.state { font-weight: 600; border-radius: 3px; padding: .1em .5em; color: #fff; }
.closed { background: #2e7d32; }
.open { background: #c62828; }
.half-open { background: #ef6c00; }
.shedding { background: #f9a825; color: #222; }
form { display: inline; }
th, .state, td.controls { white-space: nowrap; }
</style>
</head>
<body>
<h1>Circuits</h1>
{{if not .Hosts}}<p>No host tracked yet.</p>{{else}}
<table>
<thead><tr><th>Host</th><th>State</th><th>Failures in a row</th><th>Requests</th><th>Successes</th><th>Failures</th><th>Ignored</th><th>Rejected</th><th>Shed</th><th>Retries (denied)</th><th>Load</th><th>Retry in</th>{{if .Controls}}<th></th>{{end}}</tr></thead>
<tbody>
{{range .Hosts}}<tr data-host="{{.Host}}">
<td class="host">{{.Host}}</td>
<td><span class="state {{if .Shedding}}shedding{{else}}{{.State}}{{end}}">{{.State}}{{if .Isolated}} (isolated){{end}}{{if .Shedding}}, shedding load{{end}}</span></td>
<td class="num">{{if eq .State "closed"}}{{.ConsecutiveFailures}}{{else}}&mdash;{{end}}</td>
<td class="num">{{.Total.Requests}}</td>
<td class="num">{{.Total.Successes}}</td>
<td class="num">{{.Total.Failures}}</td>
<td class="num">{{.Total.Ignored}}</td>
<td class="num">{{.Total.Rejected}}</td>
<td class="num">{{.Total.Shed}}</td>
<td class="num retries">{{.Total.Retries}}{{if .Total.RetriesDenied}} ({{.Total.RetriesDenied}}){{end}}</td>
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
