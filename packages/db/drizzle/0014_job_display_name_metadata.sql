ALTER TABLE "jobs"."jobs" ADD COLUMN "display_name" text;--> statement-breakpoint
ALTER TABLE "jobs"."jobs" ADD COLUMN "metadata" jsonb;--> statement-breakpoint
CREATE INDEX "jobs_type_succeeded_idx" ON "jobs"."jobs" USING btree ("type","completed_at") WHERE status = 'succeeded';
