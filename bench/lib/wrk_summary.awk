# wrk --latency output -> one line "rps p50_ms p99_ms errors" (errors:
# non-2xx answers and socket errors). Used by bench/serve.sh and
# bench/redis.sh.
function ms(x) {
  if (x ~ /us$/) return x / 1000
  if (x ~ /ms$/) return x + 0
  if (x ~ /s$/) return x * 1000
  return x
}
/Requests\/sec/ { r = $2 }
/^ +50%/ { p50 = $2 }
/^ +99%/ { p99 = $2 }
/Non-2xx/ { bad += $NF }
/Socket errors/ { gsub(/,/, ""); bad += $4 + $6 + $8 + $10 }
END { printf "%.0f %.2f %.2f %d\n", r, ms(p50), ms(p99), bad }
