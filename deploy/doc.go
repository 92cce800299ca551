// Package deploy holds kstat's deployment kit (kubernetes/, prometheus/,
// grafana/; the systemd unit is in systemd/) and, in its tests, the checks
// that keep it true to the binary: every PromQL expression parses and names
// only families a live kstat exports, and the manifests use only flags
// "kstat serve" accepts.
package deploy
