// tongdai console: live updates over /console/ws, and running call durations.
// No framework and nothing loaded from elsewhere (the page's CSP allows only 'self').
"use strict";

(function () {
  const body = document.body;
  const app = body.dataset.app;
  const words = body.dataset;
  // Milliseconds from an event's time on the server to its change on screen, and (the
  // anchor) to its arrival in the page.
  window.tdLatencies = [];
  window.tdReceived = [];

  function hms(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const mm = String(Math.floor(s / 60) % 60).padStart(2, "0");
    const ss = String(s % 60).padStart(2, "0");
    return s >= 3600 ? Math.floor(s / 3600) + ":" + mm + ":" + ss : Math.floor(s / 60) + ":" + ss;
  }

  function tick() {
    const now = Date.now() / 1000;
    document.querySelectorAll("#live-calls tbody tr").forEach(function (tr) {
      tr.querySelector(".duration").textContent = hms(now - parseFloat(tr.dataset.since));
    });
  }

  function party(p) {
    return (p && (p.number || p.sip_user)) || "-";
  }

  function callRow(ev) {
    const table = document.querySelector("#live-calls tbody");
    if (!table) return false;
    const d = ev.data;
    let tr = table.querySelector('tr[data-call-id="' + CSS.escape(d.call_id) + '"]');
    if (ev.type === "call.ended") {
      if (tr) tr.remove();
    } else {
      if (!tr) {
        tr = document.createElement("tr");
        tr.dataset.callId = d.call_id;
        ["caller", "callee", "state", "duration"].forEach(function (c) {
          const td = document.createElement("td");
          td.className = c;
          tr.appendChild(td);
        });
        table.appendChild(tr);
      }
      const talking = ev.type === "call.answered";
      tr.querySelector(".caller").textContent = party(d.caller);
      tr.querySelector(".callee").textContent = party(d.callee);
      const st = tr.querySelector(".state");
      st.className = "state " + (talking ? "talking" : "ringing");
      st.textContent = talking ? words.wTalking : words.wRinging;
      tr.dataset.since = String((talking && d.answered_at) || d.started_at || ev.ts);
    }
    document.getElementById("no-live-calls").hidden = table.children.length > 0;
    tick();
    return true;
  }

  function presence(ev) {
    const online = ev.type === "device.registered";
    let changed = false;
    ev.sip_users.forEach(function (user) {
      document.querySelectorAll('.presence[data-sip-user="' + CSS.escape(user) + '"]').forEach(function (el) {
        el.className = "presence " + (online ? "online" : "offline");
        el.textContent = online ? words.wOnline : words.wOffline;
        changed = true;
      });
      const list = document.getElementById("online-devices");
      if (list) {
        const li = list.querySelector('li[data-sip-user="' + CSS.escape(user) + '"]');
        if (online && !li) {
          const item = document.createElement("li");
          item.dataset.sipUser = user;
          item.textContent = user;
          list.appendChild(item);
        } else if (!online && li) {
          li.remove();
        }
        document.getElementById("online-count").textContent = String(list.children.length);
        changed = true;
      }
    });
    return changed;
  }

  function apply(ev) {
    let shown = false;
    if (ev.type.startsWith("call.")) shown = callRow(ev);
    else if (ev.type.startsWith("device.")) shown = presence(ev);
    if (shown) window.tdLatencies.push(Date.now() - ev.ts * 1000);
  }

  // The ACD publishes no events: the dashboard's queues are read every two seconds.
  function pollQueues() {
    const table = document.getElementById("queue-status");
    if (!table || !app) return;
    fetch("/console/queues.json?app=" + encodeURIComponent(app), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : []; })
      .then(function (queues) {
        queues.forEach(function (q) {
          const tr = table.querySelector('tr[data-queue="' + CSS.escape(q.name) + '"]');
          if (!tr) return;
          tr.querySelector(".waiting").textContent = q.waiting === null ? "-" : String(q.waiting);
          const cell = tr.querySelector(".agents");
          cell.textContent = "";
          q.agents.forEach(function (a) {
            const span = document.createElement("span");
            span.className = "agent " + (a.state || "");
            span.textContent = a.sip_user + (a.state ? " (" + table.dataset["w" + a.state[0].toUpperCase() + a.state.slice(1)] + ")" : "");
            cell.appendChild(span);
            cell.appendChild(document.createTextNode(" "));
          });
        });
      })
      .catch(function () {});
  }

  function connect(delay) {
    const status = document.getElementById("live-status");
    if (!app || !status) return;
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(proto + "//" + location.host + "/console/ws?app=" + encodeURIComponent(app));
    ws.onopen = function () {
      delay = 500;
    };
    ws.onmessage = function (m) {
      const msg = JSON.parse(m.data);
      if (msg.op === "hello") {
        status.textContent = words.wLive;
        status.className = "live-status on";
      } else if (msg.op === "event") {
        window.tdReceived.push(Date.now() - msg.data.ts * 1000);
        apply(msg.data);
      }
    };
    ws.onclose = function (e) {
      status.textContent = words.wDisconnected;
      status.className = "live-status off";
      if (e.code === 4401) {
        location.href = "/console/signin";
        return;
      }
      setTimeout(function () { connect(Math.min(delay * 2, 10000)); }, delay);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    setInterval(tick, 1000);
    tick();
    if (document.getElementById("queue-status")) setInterval(pollQueues, 2000);
    connect(500);
  });
})();
