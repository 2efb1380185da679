#!/bin/sh
# Run every cmocka unit test binary given as an argument; print each one's own
# summary and a total. Exit 1 if any failed.
passed=0
failed=0
for t in "$@"; do
	echo "== $t"
	if "$t"; then
		passed=$((passed + 1))
	else
		failed=$((failed + 1))
		echo "FAILED: $t"
	fi
done
echo "units: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
