-- wrk script: POST requests carrying a 1 KiB body (tests/e2e/t_proxy_zero_drop.sh, bench/proxy.sh).
wrk.method = "POST"
wrk.body = string.rep("x", 1024)
wrk.headers["Content-Type"] = "application/octet-stream"
