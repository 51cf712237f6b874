module github.com/httpbreaker/httpbreaker

go 1.24

require github.com/hashicorp/go-cleanhttp v0.5.2
