// Package integrations holds the tests and examples that run httpbreaker
// with the clients Go users already have — go-retryablehttp, resty and
// OpenTelemetry's otelhttp — in a module of its own, so that a user of the
// library never downloads them. The ready-made retry policy is in
// [github.com/httpbreaker/httpbreaker/integrations/retryhttp].
package integrations
