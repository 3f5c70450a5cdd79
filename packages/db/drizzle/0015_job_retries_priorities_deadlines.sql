ALTER TABLE "jobs"."jobs" ADD COLUMN "priority" text DEFAULT 'normal' NOT NULL;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "run_order" timestamp with time zone DEFAULT now();--> statement-breakpoint
UPDATE "jobs"."jobs" SET "run_order" = "created_at";--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "max_attempts" integer;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "next_attempt_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "start_by" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "timeout_s" integer;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "run_deadline" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "claimed_via" uuid;--> statement-breakpoint
CREATE INDEX "jobs_queue_run_order_idx" ON "jobs"."jobs" USING btree ("queue","run_order") WHERE status = 'queued' and not held;--> statement-breakpoint
CREATE INDEX "jobs_start_by_idx" ON "jobs"."jobs" USING btree ("start_by") WHERE status = 'queued';--> statement-breakpoint
CREATE INDEX "jobs_run_deadline_idx" ON "jobs"."jobs" USING btree ("run_deadline") WHERE status = 'running';--> statement-breakpoint
CREATE INDEX "jobs_next_attempt_idx" ON "jobs"."jobs" USING btree ("next_attempt_at") WHERE status = 'queued' and dispatched_at is null;
CREATE INDEX "jobs_claimed_via_idx" ON "jobs"."jobs" USING btree ("claimed_via") WHERE status = 'running' and claimed_via is not null;
