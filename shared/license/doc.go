// Package license holds the pure rules of the licensing domain that both the writer and
// the edge apply: the license key format, instance and email normalization, slug rules
// and the evaluation of a license's status at read time. It imports no driver.
package license
