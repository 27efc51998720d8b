// tongdai softphone: one SIP account over WebSocket (JsSIP), one call at a time.
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let ua = null;
  let session = null;
  let config = null;
  let started = 0;
  let ticker = null;
  let held = false;
  let muted = false;

  function setStatus(text) { $('status').textContent = text; }

  function setState(text) {
    $('state').textContent = text;
    const live = session !== null;
    const incoming = live && text === 'ringing' && session.direction === 'incoming';
    $('answer').disabled = !incoming;
    $('hangup').disabled = !live;
    $('hold').disabled = !(live && (text === 'in call' || text === 'on hold'));
    $('mute').disabled = $('hold').disabled;
    $('call').disabled = live;
  }

  function tick() {
    const s = Math.floor((Date.now() - started) / 1000);
    const mm = String(Math.floor(s / 60)).padStart(2, '0');
    const ss = String(s % 60).padStart(2, '0');
    $('timer').textContent = `${mm}:${ss}`;
  }

  function startTimer() {
    started = Date.now();
    tick();
    ticker = setInterval(tick, 1000);
  }

  function stopTimer() {
    if (ticker !== null) clearInterval(ticker);
    ticker = null;
  }

  function wsUrl() {
    const secure = location.protocol === 'https:' && config.wss_port;
    const port = secure ? config.wss_port : (config.ws_port || config.wss_port);
    const scheme = (secure || !config.ws_port) ? 'wss' : 'ws';
    return `${scheme}://${location.hostname}:${port}`;
  }

  function attachAudio(s) {
    const pc = s.connection;
    if (!pc) return;
    const play = () => {
      const streams = pc.getReceivers().map((r) => r.track).filter((t) => t);
      if (streams.length) {
        $('remote').srcObject = new MediaStream(streams);
        $('remote').play().catch(() => {});
      }
    };
    pc.addEventListener('track', play);
    play();
  }

  function ended(cause) {
    stopTimer();
    session = null;
    held = false;
    muted = false;
    $('hold').textContent = 'Hold';
    $('mute').textContent = 'Mute';
    $('peer').textContent = cause ? `(${cause})` : '';
    setState('idle');
  }

  function track(s) {
    session = s;
    const other = s.remote_identity && s.remote_identity.uri ? s.remote_identity.uri.user : '';
    $('peer').textContent = other;
    setState(s.direction === 'incoming' ? 'ringing' : 'calling');
    s.on('peerconnection', () => attachAudio(s));
    s.on('progress', () => { if (s.direction === 'outgoing') setState('ringing'); });
    s.on('accepted', () => { attachAudio(s); setState('in call'); startTimer(); });
    s.on('confirmed', () => { attachAudio(s); });
    s.on('hold', () => { held = true; $('hold').textContent = 'Resume'; setState('on hold'); });
    s.on('unhold', () => { held = false; $('hold').textContent = 'Hold'; setState('in call'); });
    s.on('ended', (e) => ended(e.cause));
    s.on('failed', (e) => ended(e.cause));
    if (s.connection) attachAudio(s);
  }

  const callOptions = () => ({
    mediaConstraints: { audio: true, video: false },
    pcConfig: { iceServers: [] },
    rtcOfferConstraints: { offerToReceiveAudio: true, offerToReceiveVideo: false },
  });

  function signIn(user, password) {
    if (ua) ua.stop();
    const socket = new JsSIP.WebSocketInterface(wsUrl());
    ua = new JsSIP.UA({
      sockets: [socket],
      uri: `sip:${user}@${config.domain}`,
      authorization_user: user,
      password,
      register: true,
      session_timers: false,
      user_agent: 'tongdai-softphone',
    });
    setStatus('registering');
    ua.on('registered', () => { setStatus('registered'); $('phone').hidden = false; });
    ua.on('unregistered', () => setStatus('signed out'));
    ua.on('registrationFailed', (e) => setStatus(`failed: ${e.cause}`));
    ua.on('disconnected', () => setStatus('disconnected'));
    ua.on('newRTCSession', (e) => {
      if (session !== null && e.originator === 'remote') {
        e.session.terminate({ status_code: 486 });
        return;
      }
      track(e.session);
    });
    ua.start();
    $('signout').hidden = false;
  }

  $('signin-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    signIn($('user').value.trim(), $('password').value);
  });
  $('signout').addEventListener('click', () => {
    if (ua) ua.stop();
    ua = null;
    $('phone').hidden = true;
    $('signout').hidden = true;
  });
  $('call').addEventListener('click', () => {
    const target = $('dial').value.trim();
    if (!ua || !target || session) return;
    ua.call(`sip:${target}@${config.domain}`, callOptions());
  });
  $('answer').addEventListener('click', () => {
    if (session && session.direction === 'incoming') session.answer(callOptions());
  });
  $('hangup').addEventListener('click', () => { if (session) session.terminate(); });
  $('hold').addEventListener('click', () => {
    if (!session) return;
    if (held) session.unhold(); else session.hold();
  });
  $('mute').addEventListener('click', () => {
    if (!session) return;
    muted = !muted;
    if (muted) session.mute({ audio: true }); else session.unmute({ audio: true });
    $('mute').textContent = muted ? 'Unmute' : 'Mute';
  });
  for (const key of document.querySelectorAll('#keypad button')) {
    key.addEventListener('click', () => {
      const digit = key.dataset.digit;
      if (session && session.isEstablished()) {
        // RFC 4733 telephone-event in the media, which carriers and IVRs read.
        session.sendDTMF(digit, { transportType: 'RFC2833' });
        $('dtmf').textContent += digit;
      } else {
        $('dial').value += digit;
      }
    });
  }

  // For scripts driving the page (tests, a CRM embedding it): the live call.
  window.tongdaiPhone = { get session() { return session; }, get ua() { return ua; } };

  fetch('/phone/config.json').then((r) => r.json()).then((c) => {
    config = c;
    if (!c.ws_port && !c.wss_port) setStatus('SIP over WebSocket is off (TONGDAI_SIP_WS_PORT)');
  });
  setState('idle');
}());
