#!/usr/bin/env bash
# The README's configuration reference is what `switchboard check --reference` prints (the
# schema tables), and console.json.example passes check: docs and code stay in step.
source "$(dirname "$0")/lib.sh"
root=$(cd "$(dirname "$0")/../.." && pwd)
sed -n '/<!-- config-reference:start -->/,/<!-- config-reference:end -->/p' "$root/README.md" |
  sed '1d;$d' > "$TMP/readme-ref.md"
"$SB" check --reference > "$TMP/code-ref.md"
check "README configuration reference matches the schema (run: make docs)" \
  diff -u "$TMP/code-ref.md" "$TMP/readme-ref.md"
check "README shows the two commands first" \
  bash -c "grep -m1 -n '^make demo' '$root/README.md' | grep -q . && grep -q '^make test' '$root/README.md'"
OPENAI_API_KEY=x ANTHROPIC_API_KEY=x GEMINI_API_KEY=x GROQ_API_KEY=x SWITCHBOARD_ADMIN_TOKEN=x \
  "$SB" check -c "$root/console.json.example" >"$TMP/check.out" 2>&1
check "console.json.example is check-valid" test $? = 0
finish
