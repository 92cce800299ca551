# Convenience targets; each runs a script in scripts/.
.PHONY: build test generate vmlinux
build:
	go build -o kstat ./cmd/kstat
test:
	bash scripts/test.sh
generate:
	bash scripts/generate.sh
vmlinux:
	bash scripts/vmlinux.sh
