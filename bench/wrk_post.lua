-- wrk script of bench/serving.py: POST the JSON file named by WRK_BODY_FILE to the URL given to wrk;
-- with WRK_CONNECTION_CLOSE=1, ask for a new connection per request (as gunicorn's sync workers do).
local path = assert(os.getenv("WRK_BODY_FILE"), "set WRK_BODY_FILE to the JSON body to send")
local file = assert(io.open(path, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
if os.getenv("WRK_CONNECTION_CLOSE") == "1" then
  wrk.headers["Connection"] = "close"
end
