# Sourced by hack/cluster.sh and hack/node-conformance.sh: which iptables chains a run added,
# so that only those are removed at its end.

# save_chains DIR: records the chains of every table in DIR/<iptables|ip6tables>-<table>.chains.
save_chains() {
  local ipt table
  for ipt in iptables ip6tables; do
    for table in filter nat mangle; do
      "$ipt" -t "$table" -S 2>/dev/null | awk '$1=="-N"{print $2}' >"$1/$ipt-$table.chains" || true
    done
  done
}

# drop_new_chains DIR IPT REGEX: removes IPT's chains whose names match REGEX and that are not
# in what save_chains DIR recorded: first the jumps to each from elsewhere, then its rules,
# then the chain.
drop_new_chains() {
  local dir=$1 ipt=$2 ours=$3 table chain f rules rule
  for table in filter nat mangle; do
    f=$dir/$ipt-$table.chains
    [ -f "$f" ] || continue
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1=="-N"{print $2}' | grep -E "$ours" || true); do
      grep -qx -- "$chain" "$f" && continue
      rules=$("$ipt" -t "$table" -S 2>/dev/null | grep -E -- "-j $chain( |$)" | grep -v -- "^-A $chain " || true)
      # iptables -S quotes what has spaces (comments): eval reads it back as the shell would.
      while read -r rule; do
        [ -n "$rule" ] && eval "\"\$ipt\" -t \"\$table\" ${rule/-A /-D }" 2>/dev/null || true
      done <<<"$rules"
      "$ipt" -t "$table" -F "$chain" 2>/dev/null || true
    done
    for chain in $("$ipt" -t "$table" -S 2>/dev/null | awk '$1=="-N"{print $2}' | grep -E "$ours" || true); do
      grep -qx -- "$chain" "$f" || "$ipt" -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}
