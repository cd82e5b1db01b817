/* stemsplit listening report: one multitrack player per <section class="player">.
 *
 * Every source (the mixture, the reference stems, each method's estimates) has one <audio>
 * element per stem. Only the selected source's elements play, side by side; switching source
 * starts the new ones at the old ones' position, as trackswitch.js does. The first element of
 * the selected source is the clock: the others are pulled back to it when they drift.
 * Solo and mute are per stem and hold in every source. Names are only ever read and written
 * as text (never innerHTML), so nothing from the data can run as code.
 */
(function () {
  'use strict';

  var DRIFT = 0.06; // seconds two stems may drift apart before they are re-aligned
  var players = [];

  function clock(t) {
    if (!isFinite(t) || t < 0) { t = 0; }
    var minutes = Math.floor(t / 60);
    var seconds = t - 60 * minutes;
    return minutes + ':' + (seconds < 10 ? '0' : '') + seconds.toFixed(1);
  }

  function Player(root) {
    var self = this;
    this.root = root;
    this.duration = parseFloat(root.getAttribute('data-duration')) || 0;
    this.source = root.querySelector('.source').getAttribute('data-source');
    this.time = 0;
    this.playing = false;
    this.solo = new Set();
    this.mute = new Set();
    this.timer = null;
    this.all = Array.prototype.slice.call(root.querySelectorAll('audio'));
    this.playButton = root.querySelector('.play');
    this.seekBar = root.querySelector('.seek');
    this.clockText = root.querySelector('.clock');
    this.status = root.querySelector('.status');

    this.playButton.addEventListener('click', function () {
      if (self.playing) { self.pause(); } else { self.play(); }
    });
    this.seekBar.addEventListener('input', function () { self.seek(parseFloat(self.seekBar.value)); });
    each(root, '.source', function (button) {
      button.addEventListener('click', function () { self.select(button.getAttribute('data-source')); });
    });
    each(root, '.solo', function (button) {
      button.addEventListener('click', function () { self.toggle(self.solo, button.getAttribute('data-stem')); });
    });
    each(root, '.mute', function (button) {
      button.addEventListener('click', function () { self.toggle(self.mute, button.getAttribute('data-stem')); });
    });
    each(root, 'img.spec', function (img) {
      img.addEventListener('click', function (event) { self.clickPicture(img, event); });
    });
    this.all.forEach(function (audio) {
      audio.addEventListener('ended', function () {
        if (self.playing && audio === self.audios(self.source)[0]) { self.stop(); }
      });
      audio.addEventListener('error', function () {
        self.say('cannot play ' + audio.getAttribute('src') + ' in this browser');
      });
    });
    this.render();
  }

  function each(root, selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  Player.prototype.audios = function (source) {
    return this.all.filter(function (audio) { return audio.getAttribute('data-source') === source; });
  };

  Player.prototype.audible = function (stem) {
    return this.solo.size ? this.solo.has(stem) : !this.mute.has(stem);
  };

  Player.prototype.currentTime = function () {
    var clockAudio = this.audios(this.source)[0];
    return this.playing && clockAudio ? clockAudio.currentTime : this.time;
  };

  Player.prototype.say = function (text) { this.status.textContent = text; };

  Player.prototype.applyMutes = function () {
    var self = this;
    this.all.forEach(function (audio) {
      var stem = audio.getAttribute('data-stem');
      audio.muted = stem !== null && !self.audible(stem);
    });
  };

  Player.prototype.start = function (list, t) {
    var self = this;
    list.forEach(function (audio) {
      audio.currentTime = t;
      var promise = audio.play();
      if (promise) {
        promise.catch(function (err) {
          // a pause() or a source switch interrupts a pending play(): not an error
          if (err && err.name !== 'AbortError') { self.say('playback failed: ' + err.message); }
        });
      }
    });
  };

  Player.prototype.play = function () {
    var self = this;
    players.forEach(function (other) { if (other !== self) { other.pause(); } });
    if (this.time >= this.duration - 0.05) { this.time = 0; }
    this.playing = true;
    this.say('');
    this.applyMutes();
    this.start(this.audios(this.source), this.time);
    clearInterval(this.timer);
    this.timer = setInterval(function () { self.tick(); }, 50);
    this.render();
  };

  Player.prototype.pause = function () {
    if (!this.playing) { return; }
    this.time = this.currentTime();
    this.playing = false;
    clearInterval(this.timer);
    this.all.forEach(function (audio) { audio.pause(); });
    this.render();
  };

  Player.prototype.stop = function () {
    this.pause();
    this.seek(0);
  };

  Player.prototype.seek = function (t) {
    t = Math.min(Math.max(isFinite(t) ? t : 0, 0), this.duration);
    this.time = t;
    this.audios(this.source).forEach(function (audio) { audio.currentTime = t; });
    this.render();
  };

  // Switch what is heard without losing the place in the song.
  Player.prototype.select = function (source) {
    if (source === this.source || !this.audios(source).length) { return; }
    var t = this.currentTime();
    var previous = this.audios(this.source);
    this.source = source;
    this.time = t;
    previous.forEach(function (audio) { audio.pause(); });
    if (this.playing) {
      this.applyMutes();
      this.start(this.audios(source), t);
    } else {
      this.audios(source).forEach(function (audio) { audio.currentTime = t; });
    }
    this.render();
  };

  Player.prototype.toggle = function (set, stem) {
    if (set.has(stem)) { set.delete(stem); } else { set.add(stem); }
    this.applyMutes();
    this.render();
  };

  // A click on a picture plays that source (solo, for a stem) from the clicked time.
  Player.prototype.clickPicture = function (img, event) {
    var box = img.getBoundingClientRect();
    var fraction = box.width > 0 ? (event.clientX - box.left) / box.width : 0;
    var panel = img.closest('.panel');
    var row = img.closest('.row');
    var stem = row ? row.getAttribute('data-stem') : null;
    if (stem !== null) {
      this.solo = new Set([stem]);
      this.mute.delete(stem);
    }
    this.select(panel.getAttribute('data-source'));
    this.seek(fraction * this.duration);
    if (this.playing) { this.applyMutes(); } else { this.play(); }
    this.render();
  };

  Player.prototype.tick = function () {
    var list = this.audios(this.source);
    if (!list.length) { return; }
    var t = list[0].currentTime;
    for (var i = 1; i < list.length; i++) {
      if (!list[i].paused && Math.abs(list[i].currentTime - t) > DRIFT) { list[i].currentTime = t; }
    }
    this.time = t;
    this.renderTime(t);
  };

  Player.prototype.renderTime = function (t) {
    var fraction = this.duration > 0 ? Math.min(t / this.duration, 1) : 0;
    if (document.activeElement !== this.seekBar) { this.seekBar.value = String(t); }
    this.clockText.textContent = clock(t) + ' / ' + clock(this.duration);
    each(this.root, '.playhead', function (line) { line.style.left = (100 * fraction).toFixed(3) + '%'; });
  };

  Player.prototype.render = function () {
    var self = this;
    this.playButton.textContent = this.playing ? 'Pause' : 'Play';
    this.playButton.setAttribute('aria-pressed', this.playing ? 'true' : 'false');
    each(this.root, '.source', function (button) {
      button.setAttribute('aria-pressed', button.getAttribute('data-source') === self.source ? 'true' : 'false');
    });
    each(this.root, '.panel', function (panel) {
      panel.hidden = panel.getAttribute('data-source') !== self.source;
    });
    each(this.root, '.solo', function (button) {
      button.setAttribute('aria-pressed', self.solo.has(button.getAttribute('data-stem')) ? 'true' : 'false');
    });
    each(this.root, '.mute', function (button) {
      button.setAttribute('aria-pressed', self.mute.has(button.getAttribute('data-stem')) ? 'true' : 'false');
    });
    each(this.root, '.row[data-stem]', function (row) {
      row.classList.toggle('silent', !self.audible(row.getAttribute('data-stem')));
    });
    this.renderTime(this.currentTime());
  };

  Array.prototype.forEach.call(document.querySelectorAll('section.player'), function (root) {
    players.push(new Player(root));
  });
})();
